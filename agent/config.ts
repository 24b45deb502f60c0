import { readFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { idString, modelName, outlierPolicy } from '../shared/schemas/index.js';
import { LOG_FORMATS } from '../shared/log.js';
import { configJson, parseConfig, unreadableConfig, type ConfigKind } from '../shared/config.js';
import { AgentError } from './errors.js';
import { cameraNameProblems, cameraSchema } from './inputs/camera-config.js';
import type { PoolSettings } from './inference/pool.js';

const MiB = 1024 * 1024;

/** Default device id: the host name, made id-safe. */
const defaultDeviceId = (): string => hostname().replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 64) || 'device';

export const agentConfigSchema = z.strictObject({
  device_id: idString.default(defaultDeviceId).meta({ description: 'Id in topics, samples and telemetry.', defaultText: 'the host name (characters outside `A-Za-z0-9._:-` become `-`)' }),
  tags: z.record(z.string(), z.string()).default({}).describe('Free-form tags (site, hardware) reported with status; the fleet selects rollout targets by tag.'),
  data_dir: z.string().default('./.data/agent').describe('Queue database and model store.'),
  fleet_public_key: z.string().optional().describe("The fleet's ed25519 public key, a PEM string or a PEM file: packages must be signed by this key."),
  fleet_token: z.string().optional().describe("This device's bearer token for the fleet's HTTP API (model downloads)."),
  allow_unsigned: z.boolean().default(false).describe('Accept unsigned packages (development only; a device in the field should never set this).'),
  models: z
    .strictObject({
      initial: z
        .union([z.string(), z.array(z.string()).min(1).max(16)])
        .optional()
        .describe(
          'A package directory installed and activated at start when no model is active yet; or a list of them, one per model name (`detector`, `ppe-classifier`): each model name is a slot with its own versions, shadow, rollback, outlier policy and telemetry, the first the default of `POST /v1/infer` (`?model=NAME` picks another). A slot already installed keeps its versions; two packages of one model name are refused (`AGENT_MODEL_NAME_DUPLICATE`).',
        ),
      keep: z.number().int().nonnegative().default(1).describe('Installed versions kept besides the active and the previous one.'),
    })
    .prefault({}),
  inference: z
    .strictObject({
      workers: z.number().int().positive().max(16).default(1).describe('Inference worker threads, each with its own ONNX Runtime session.'),
      intra_op_threads: z
        .number()
        .int()
        .nonnegative()
        .default(0)
        .meta({ description: 'ONNX Runtime intra-op threads per session; 0 = the host\'s CPU count, at most 4. On 2-core devices leave room for sharp.', defaultText: '`0`: the CPU count, at most 4' }),
      inter_op_threads: z.number().int().nonnegative().default(1).describe('ONNX Runtime inter-op threads per session.'),
      graph_optimization: z.enum(['disabled', 'basic', 'extended', 'all']).default('all').describe('ONNX Runtime graph optimisation level.'),
      execution_providers: z.array(z.string()).min(1).default(['cpu']).describe('ONNX Runtime execution providers, tried in order; CPU is the fallback when an accelerator is missing.'),
      allow_spinning: z.boolean().default(false).describe('ONNX Runtime thread spinning: burns idle CPU after each run; off unless latency matters more than power.'),
      max_batch: z.number().int().positive().max(256).default(1).describe('Micro-batch size when requests queue up.'),
      batch_window_ms: z.number().nonnegative().max(1000).default(0).describe('How long a lone request may wait for company (ms).'),
      max_pending: z.number().int().positive().default(256).describe('Requests waiting for inference before more are refused with `AGENT_ENGINE_OVERLOADED`.'),
      warmup_runs: z.number().int().nonnegative().default(3).describe('Inference runs at model load, before serving.'),
    })
    .prefault({}),
  outlier: outlierPolicy
    .partial()
    .default({})
    .meta({ description: "Overrides of the model manifest's outlier policy, key by key: a key left out keeps the manifest's value.", keysDefaultText: "the manifest's" }),
  outlier_by_model: z
    .record(modelName, outlierPolicy.partial())
    .default({})
    .meta({ description: 'Per model name, overrides on top of `outlier` for that model slot only (keys as in `outlier`), e.g. `{ "detector": { "random_sample_rate": 0.01 } }`.', keysDefaultText: "`outlier`'s, else the manifest's" }),
  pipelines: z
    .array(
      z.strictObject({
        detector: modelName.describe('The detector model slot whose boxes are classified.'),
        classifier: modelName.describe('The classifier model slot each box crop goes to; its answer is attached to the box as `classification`.'),
        labels: z.array(z.string().min(1)).min(1).optional().describe('Only boxes of these detector labels are classified (absent: every box).'),
        max_boxes: z.number().int().positive().max(64).default(8).describe('Boxes classified per frame at most, best-scoring first.'),
        min_box_px: z.number().int().positive().default(8).describe('Boxes narrower or lower than this (pixels) are not classified.'),
        padding: z.number().min(0).max(1).default(0).describe('Context added around each box before cropping, as a fraction of its width and height on each side.'),
      }),
    )
    .default([])
    .describe('Detector -> classifier pipelines (several models per device): each frame the detector answers, its boxes are cropped and passed to the classifier, whose answer is attached to each box. The classifier keeps its own outlier policy and telemetry.'),
  queue: z
    .strictObject({
      quota_bytes: z.number().int().positive().default(256 * MiB).describe('Payload bytes kept before eviction (default 256 MiB).'),
      reclaim_interval_s: z.number().positive().default(30).describe('How often disk freed by drained samples is given back to the file system (in small steps that do not hold up captures); the queue file shrinks after a backlog drains.'),
      synchronous: z.enum(['FULL', 'NORMAL']).default('FULL').describe('SQLite `synchronous` of the queue: `FULL`, an acknowledged capture survives power loss; `NORMAL`, only a process crash.'),
    })
    .prefault({}),
  uplink: z
    .strictObject({
      kind: z.enum(['mqtt', 'none']).default('none').describe('`mqtt`: samples, telemetry and status go to the fleet over MQTT; `none`: no uplink.'),
      url: z.string().default('mqtt://127.0.0.1:1883').describe('Broker URL (`mqtts://` for AWS IoT Core).'),
      client_id: z.string().optional().meta({ description: 'MQTT client id.', defaultText: '`device_id`' }),
      username: z.string().optional().describe('Broker user name.'),
      password: z.string().optional().describe('Broker password.'),
      tls: z
        .strictObject({
          ca: z.string().optional().meta({ description: 'CA certificate(s), PEM file: the broker\'s certificate must chain to it (the fleet CA, or Amazon Root CA 1 for AWS IoT Core).', defaultText: "Node's bundled roots" }),
          cert: z.string().optional().describe('This device\'s certificate, PEM file (from `edgeloop devices register --cert`, or AWS IoT Core).'),
          key: z.string().optional().describe('Its private key, PEM file.'),
          servername: z.string().optional().meta({ description: 'Name the broker\'s certificate must carry, when the URL\'s host is not it (an IP address or another name).', defaultText: 'the URL\'s host' }),
        })
        .optional()
        .describe('Mutual TLS with `mqtts://` URLs: the device logs in with its certificate. Paths are relative to the config file; each file is read and checked at start (`AGENT_UPLINK_TLS_INVALID`).'),
      keepalive_s: z.number().int().positive().default(30).describe('MQTT keepalive (seconds).'),
      max_inflight: z.number().int().positive().max(100).default(50).describe('Unacknowledged QoS 1 publishes in flight (AWS IoT Core allows 100).'),
      max_publishes_per_s: z.number().positive().default(100).describe('Publish-rate cap (AWS IoT Core: 100 publishes/s per connection).'),
      max_message_bytes: z.number().int().positive().max(128 * 1024).default(128 * 1024).describe('Message size cap; larger samples are chunked (AWS IoT Core: 128 KB per message, a hard limit).'),
      bandwidth_bytes_per_s: z.number().nonnegative().default(0).describe('Uplink bandwidth cap; 0 = no cap.'),
      backoff_initial_ms: z.number().int().positive().default(1000).describe('First reconnect delay (ms); reconnect backoff uses full jitter.'),
      backoff_max_ms: z.number().int().positive().default(60_000).describe('Longest reconnect delay (ms).'),
      ack_mode: z
        .enum(['fleet', 'puback'])
        .default('fleet')
        .describe('When a sample is deleted from the queue: `fleet`, when the fleet acknowledges it stored it; `puback`, when the broker has it (needs `durable_broker: true`).'),
      durable_broker: z
        .boolean()
        .default(false)
        .describe(
          'Say that the broker stores every sample durably for the fleet (a persistent session on disk, such as mosquitto with persistence) before its PUBACK. Required by `ack_mode: puback`: the fleet\'s embedded broker keeps messages in memory, so a fleet crash after the PUBACK would lose samples the device already deleted.',
        ),
      ack_timeout_ms: z.number().int().positive().default(30_000).describe('A sample whose ack did not come within this time (ms) is sent again.'),
      telemetry_interval_s: z.number().positive().default(10).describe('Telemetry period (seconds).'),
    })
    .prefault({}),
  http: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Serve the local HTTP API (`/v1/infer`, `/healthz`, `/metrics`).'),
      host: z.string().default('127.0.0.1').describe('Address the local API listens on.'),
      port: z.number().int().min(0).max(65535).default(8080).describe('Port of the local API; 0 picks a free port (printed at start).'),
      max_body_bytes: z.number().int().positive().default(16 * MiB).describe('Larger request bodies get 413 `PAYLOAD_TOO_LARGE` (default 16 MiB).'),
      token: z.string().min(16).optional().describe('When set, `/v1/infer` and `/metrics` need `Authorization: Bearer <token>` (401 `AGENT_UNAUTHORIZED` otherwise); `/healthz` stays open for supervisors.'),
      allowed_hosts: z
        .array(z.string().min(1))
        .default([])
        .describe(
          'Host names the local API answers to besides `localhost` and IP addresses; a request naming another host gets 421 `AGENT_HOST_NOT_ALLOWED`, so a web page cannot reach the API through DNS rebinding.',
        ),
    })
    .prefault({}),
  watch: z
    .strictObject({
      enabled: z.boolean().default(false).describe('Watch a directory for input files.'),
      dir: z.string().default('./.data/agent/incoming').describe('The watched directory.'),
      results_file: z.string().optional().meta({ description: 'Results, one JSON line per file.', defaultText: '`<dir>/results.jsonl`' }),
      after: z.enum(['move', 'delete']).default('move').describe('What happens to a processed file: `move` to `processed_dir`, or `delete`.'),
      processed_dir: z.string().optional().meta({ description: 'Where processed files are moved (`after: move`).', defaultText: '`<dir>/processed`' }),
      failed_dir: z.string().optional().meta({ description: 'Where files that cannot be decoded go.', defaultText: '`<dir>/failed`' }),
      poll_ms: z.number().int().positive().default(500).describe('How often the directory is scanned (ms).'),
      extensions: z.array(z.string()).default(['.jpg', '.jpeg', '.png', '.webp']).describe('File extensions picked up (case-insensitive).'),
      concurrency: z.number().int().positive().default(2).describe('Files processed at once.'),
    })
    .prefault({}),
  inputs: z
    .strictObject({
      cameras: z.array(cameraSchema).default([]).describe('Camera streams: each frame, taken at `fps`, goes through the privacy mask and into inference (source `camera`). See the README\'s Cameras section.'),
      ffmpeg_path: z.string().default('ffmpeg').describe('The ffmpeg binary that reads RTSP, MJPEG and video-device cameras (a device prerequisite: `apt-get install ffmpeg`); checked at start (`AGENT_CAMERA_FFMPEG_MISSING`).'),
    })
    .prefault({}),
  local_mqtt: z
    .strictObject({
      enabled: z.boolean().default(false).describe('Take inference requests from a local MQTT broker.'),
      url: z.string().default('mqtt://127.0.0.1:1883').describe('URL of the local broker.'),
      request_topic: z.string().default('edgeloop/local/infer').describe('Topic of inference requests.'),
      result_topic: z.string().default('edgeloop/local/results').describe('Where answers go unless a request names its `reply_to`.'),
    })
    .prefault({}),
  alerts: z
    .strictObject({
      rules: z.array(z.unknown()).default([]).describe('Alert rules (see "Alert rule set" below); validated at start with every bad key named (`AGENT_ALERT_RULES_INVALID`).'),
      actions: z.record(z.string(), z.unknown()).default({}).describe('Actions rules name, by name: `mqtt`, `webhook`, `command`, `greengrass` (see "Alert rule set" below).'),
      camera_states: z.record(z.string(), z.unknown()).optional().describe('Alerts when a camera goes `offline` or its picture is `frozen` (see "Alert rule set" below).'),
      rules_file: z.string().optional().describe('A JSON file with `{ rules, actions, camera_states }`, instead of those keys here. A rule set deployed from the fleet replaces either while it is in force.'),
      uplink: z.boolean().default(true).describe('Send every alert to the fleet with its frame (boxes drawn), queued at the top priority.'),
    })
    .prefault({}),
  ipc_pubsub: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Take inference requests from other components over IPC pub/sub.'),
      request_topic: z.string().default('edgeloop/local/infer').describe('Topic of inference requests.'),
      result_topic: z.string().default('edgeloop/local/results').describe('Where answers go unless a request names its `reply_to`.'),
    })
    .prefault({})
    .describe("Greengrass mode only: inference requests from other components over IPC pub/sub (the topics must be allowed by the recipe's `aws.greengrass.ipc.pubsub` policy)."),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino level; logs go to stderr.'),
      format: z
        .enum(LOG_FORMATS)
        .default('auto')
        .describe('`auto`: readable lines (pino-pretty, coloured) when stderr is a terminal, one JSON object a line otherwise (a pipe, a file, Greengrass); `json` or `pretty` force one. `edgeloop-agent run --log-format` sets it.'),
    })
    .prefault({}),
});

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

const ENV_PREFIX = 'EDGELOOP_AGENT_';

/**
 * Environment overrides: `EDGELOOP_AGENT_UPLINK__URL=mqtts://...` sets `uplink.url`.
 * `__` separates levels; values are parsed as JSON when they parse (numbers, booleans,
 * arrays), else taken as strings.
 */
export function envOverrides(env: Record<string, string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = key.slice(ENV_PREFIX.length).toLowerCase().split('__');
    let node = out;
    for (const part of path.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    let parsed: unknown = value;
    try {
      parsed = JSON.parse(value);
    } catch {
      /* a plain string */
    }
    node[path.at(-1)!] = parsed;
  }
  return out;
}

/** Objects merge key by key (later wins); arrays and scalars are replaced. */
export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur) ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

const AGENT_CONFIG: ConfigKind = { what: 'agent configuration', error: (m, o) => new AgentError('CONFIG_INVALID', m, o) };

/**
 * Validate a config object once, at start: every bad key is named in one error, paths are
 * resolved against `baseDir`, and the result is frozen.
 */
export function parseAgentConfig(input: unknown, baseDir = process.cwd()): Readonly<AgentConfig> {
  return parseConfig(agentConfigSchema, input ?? {}, AGENT_CONFIG, {
    check: (raw, c) => [
      ...(c && c.uplink.ack_mode === 'puback' && !c.uplink.durable_broker
        ? [
            'uplink.ack_mode: puback deletes a sample as soon as the broker acknowledges it, which loses samples with a broker that keeps them in memory (the fleet\'s embedded broker); use ack_mode fleet (the default), or set uplink.durable_broker: true if your broker persists them for the fleet',
          ]
        : []),
      ...(c && c.alerts.rules_file && (c.alerts.rules.length > 0 || Object.keys(c.alerts.actions).length > 0 || c.alerts.camera_states !== undefined) ? ['alerts.rules_file: set either rules_file or rules, actions and camera_states, not both'] : []),
      ...renamedTlsKeys(raw),
      ...(c?.uplink.tls && !!c.uplink.tls.cert !== !!c.uplink.tls.key ? ['uplink.tls: cert and key go together'] : []),
      ...cameraNameProblems(raw),
      ...(c && Array.isArray(c.models.initial) && new Set(c.models.initial).size !== c.models.initial.length ? ['models.initial: a package directory is listed twice'] : []),
      ...(c?.pipelines.flatMap((p, i) => [
        ...(p.detector === p.classifier ? [`pipelines[${i}]: detector and classifier are the same model (${p.detector})`] : []),
        ...(c.pipelines.findIndex((q) => q.detector === p.detector) !== i ? [`pipelines[${i}]: model ${p.detector} already has a pipeline`] : []),
      ]) ?? []),
    ],
    finish: (c) => {
      const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
      c.data_dir = abs(c.data_dir);
      c.watch.dir = abs(c.watch.dir);
      if (c.watch.results_file) c.watch.results_file = abs(c.watch.results_file);
      if (c.watch.processed_dir) c.watch.processed_dir = abs(c.watch.processed_dir);
      if (c.watch.failed_dir) c.watch.failed_dir = abs(c.watch.failed_dir);
      if (typeof c.models.initial === 'string') c.models.initial = abs(c.models.initial);
      else if (c.models.initial) c.models.initial = c.models.initial.map(abs);
      if (c.alerts.rules_file) c.alerts.rules_file = abs(c.alerts.rules_file);
      const tls = c.uplink.tls;
      if (tls) for (const k of ['ca', 'cert', 'key'] as const) if (tls[k]) tls[k] = abs(tls[k]!);
      if (c.fleet_public_key && !c.fleet_public_key.includes('BEGIN PUBLIC KEY')) c.fleet_public_key = abs(c.fleet_public_key);
      if (c.inference.intra_op_threads === 0) c.inference.intra_op_threads = Math.max(1, Math.min(4, cpus().length));
    },
  });
}

/** The flat TLS keys before `uplink.tls`: refused with the names that replace them. */
const RENAMED_TLS_KEYS = { ca_file: 'uplink.tls.ca', cert_file: 'uplink.tls.cert', key_file: 'uplink.tls.key' } as const;

function renamedTlsKeys(raw: unknown): string[] {
  const uplink = (raw as { uplink?: unknown } | null)?.uplink;
  if (!uplink || typeof uplink !== 'object') return [];
  return Object.entries(RENAMED_TLS_KEYS)
    .filter(([old]) => old in uplink)
    .map(([old, now]) => `uplink.${old} is no longer read: use ${now} (uplink.tls holds ca, cert, key and servername)`);
}

/** Config file (JSON) + environment overrides -> validated, frozen config. */
export function loadAgentConfig(file: string | undefined, env: Record<string, string | undefined> = process.env): Readonly<AgentConfig> {
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw unreadableConfig(AGENT_CONFIG, file, err);
    }
    fromFile = configJson(AGENT_CONFIG, text, file) as Record<string, unknown>;
  }
  return parseAgentConfig(deepMerge(fromFile, envOverrides(env)), file ? dirname(resolve(file)) : process.cwd());
}

/** The fleet public key PEM, reading it from a file when the config holds a path. */
export function readFleetPublicKey(c: Pick<AgentConfig, 'fleet_public_key'>): string | undefined {
  if (!c.fleet_public_key) return undefined;
  if (c.fleet_public_key.includes('BEGIN PUBLIC KEY')) return c.fleet_public_key;
  try {
    return readFileSync(c.fleet_public_key, 'utf8');
  } catch (err) {
    throw new AgentError('CONFIG_INVALID', `fleet_public_key: cannot read ${c.fleet_public_key}: ${(err as Error).message}`, { cause: err });
  }
}

/** The inference section of the config as the pool's settings. */
export function poolSettings(i: AgentConfig['inference']): PoolSettings {
  return {
    workers: i.workers,
    intraOpThreads: i.intra_op_threads,
    interOpThreads: i.inter_op_threads,
    graphOptimization: i.graph_optimization,
    executionProviders: [...i.execution_providers],
    allowSpinning: i.allow_spinning,
    maxBatch: i.max_batch,
    batchWindowMs: i.batch_window_ms,
    maxPending: i.max_pending,
  };
}
