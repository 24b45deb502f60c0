import { join } from 'node:path';
import { dispatch, numberFlag, parseFlags, processIo, type Io } from '../../shared/cli.js';
import { ExitCode, sharedError, SharedErrors } from '../../shared/errors.js';
import { Agent } from '../agent.js';
import { loadAgentConfig } from '../config.js';
import { detectGreengrass } from '../greengrass/env.js';
import { runGreengrassCmd } from './greengrass.js';
import { createLogger, logDestination, resolveLogFormat } from '../../shared/log.js';
import { readDropped, readQueueStats } from '../queue/sqlite-stats.js';
import { AGENT_VERSION } from '../version.js';
import { inferFiles } from './infer.js';
import { runtimeCheckCmd } from './check.js';
import { assertRuntime } from '../runtime-check.js';

const HELP = `edgeloop-agent ${AGENT_VERSION} - edge ML inference agent

Usage:
  edgeloop-agent run --config FILE          run the agent (HTTP API, watched dir, MQTT, uplink)
  edgeloop-agent infer --model DIR FILE...  one-shot inference on image (or .json tensor) files
  edgeloop-agent queue stats --data DIR     store-and-forward queue statistics
  edgeloop-agent queue dropped --data DIR   samples dropped for space, id by id
  edgeloop-agent check [--json]             does this Node.js run the agent's native modules?
  edgeloop-agent --version | --help

Run 'edgeloop-agent COMMAND --help' for a command's options.
Environment: EDGELOOP_AGENT_<KEY>__<SUBKEY>=value overrides the config file (e.g. EDGELOOP_AGENT_UPLINK__URL).`;

const RUN_HELP = `Usage: edgeloop-agent run --config FILE [--log-level LEVEL] [--log-format auto|json|pretty] [--json]

Starts the agent with a JSON config file (every key is optional; see the README's
configuration reference). Logs go to stderr: readable lines when stderr is a terminal, pino
JSON (one object a line) otherwise; --log-format (or log.format in the config) forces one.
One 'ready' line goes to stdout: a sentence on a terminal, JSON otherwise or with --json
({"event":"ready","device_id","http","model","data_dir"}).
SIGINT/SIGTERM stop it gracefully: inputs first, then in-flight inference, then the queue.
It first checks that better-sqlite3 loads in this Node.js (AGENT_RUNTIME_MISMATCH names a
Node other than the one it was built for; 'edgeloop-agent check' reports every native module).

Greengrass mode: when the nucleus' environment is present (SVCUID and
AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT), the settings come from the component
configuration (key 'agent', over --config if given), the uplink is Greengrass IPC, and the
desired model follows the configuration key 'desired'. The ready line then has mode 'greengrass'.`;

const INFER_HELP = `Usage: edgeloop-agent infer --model DIR [--json] [--allow-unsigned] [--public-key FILE] [--threads N] FILE...

Runs the model package in DIR on each FILE (JPEG/PNG/WebP image, or .json tensor).
Without --json: one human line per input. With --json: one JSON line per input with
label, score, topk, model_version, latency_ms, outlier. A bad input prints
'error FILE CODE: message' and the exit code is 1 when any input failed.
The package must be signed by the key given with --public-key unless --allow-unsigned.`;

const QUEUE_HELP = `Usage: edgeloop-agent queue stats --data DIR [--json]
       edgeloop-agent queue dropped --data DIR [--json] [--after ORD] [--limit N]

stats: depth, bytes, evictions and per-priority counts of DIR/queue.db.
dropped: the samples the queue dropped to stay within its quota, oldest first (the last
50,000 are kept on record): position, time, sample id, priority, bytes and why (evicted
for a more valuable sample, or rejected on arrival). --json prints one JSON line each.
Both read the file without taking it over, so they are safe while the agent runs.`;

export function main(argv: string[], io: Io = processIo): Promise<number> {
  return dispatch(argv, io, { help: HELP, version: AGENT_VERSION, commands: { run: runCmd, infer: inferCmd, queue: queueCmd, check: runtimeCheckCmd } });
}

async function runCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(argv, { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' }, 'log-format': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, RUN_HELP);
  if (values.help) {
    io.out(RUN_HELP);
    return 0;
  }
  // A Node other than the one the native modules were built for fails here, with the reason,
  // rather than as a stack trace from the queue's first database open.
  await assertRuntime();
  const env = { ...process.env, ...(values['log-level'] ? { EDGELOOP_AGENT_LOG__LEVEL: values['log-level'] } : {}), ...(values['log-format'] ? { EDGELOOP_AGENT_LOG__FORMAT: values['log-format'] } : {}) };
  const gg = detectGreengrass(env);
  if (gg) return runGreengrassCmd(gg, { configFile: values.config, env, io });
  const config = loadAgentConfig(values.config, env);
  const errTTY = process.stderr.isTTY === true;
  const log = createLogger(config.log.level, logDestination(resolveLogFormat(config.log.format, errTTY), 2, errTTY), { device: config.device_id });
  const agent = await Agent.start(config, { log });
  const ready = { event: 'ready', device_id: config.device_id, http: agent.httpUrl, model: agent.service.activeRef, data_dir: config.data_dir };
  if (values.json || process.stdout.isTTY !== true) io.out(JSON.stringify(ready));
  else {
    const model = ready.model ? `${ready.model.name}@${ready.model.version}` : 'none yet (the fleet sends one with a rollout; until then /v1/infer answers 503)';
    io.out(`agent ${ready.device_id} ready: ${ready.http ? `POST ${ready.http}/v1/infer` : 'no local HTTP API'}, model ${model}, data ${ready.data_dir}`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'stopping');
      agent.stop().then(resolve, (err: unknown) => {
        log.error({ err }, 'stop failed');
        resolve();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

async function inferCmd(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(
    argv,
    { model: { type: 'string', short: 'm' }, json: { type: 'boolean' }, 'allow-unsigned': { type: 'boolean' }, 'public-key': { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    INFER_HELP,
  );
  if (values.help) {
    io.out(INFER_HELP);
    return 0;
  }
  if (!values.model || positionals.length === 0) {
    throw sharedError('USAGE', `--model DIR and at least one FILE are required\n\n${INFER_HELP}`);
  }
  const log = createLogger(process.env.EDGELOOP_LOG_LEVEL ?? 'warn');
  let exit: number = ExitCode.OK;
  for await (const line of inferFiles({ modelDir: values.model, files: positionals, allowUnsigned: values['allow-unsigned'] ?? false, publicKeyFile: values['public-key'], threads: numberFlag(values.threads, 'threads'), log })) {
    if (!line.ok) {
      exit = Math.max(exit, line.exit);
      io.err(`error ${line.file} ${line.code}: ${line.message}`);
      if (values.json) io.out(JSON.stringify({ file: line.file, error: { code: line.code, message: line.message } }));
      continue;
    }
    const r = line.result;
    if (values.json) {
      io.out(JSON.stringify({ file: line.file, label: r.label, score: r.score, topk: r.topk, model_name: r.model_name, model_version: r.model_version, latency_ms: r.latency_ms, outlier: r.outlier }));
    } else {
      const alt = r.topk.slice(1, 3).map((t) => `${t.label} ${t.score.toFixed(3)}`).join(', ');
      io.out(`${line.file}: ${r.label} (${r.score.toFixed(3)})${alt ? ` [next: ${alt}]` : ''} ${r.latency_ms.toFixed(1)} ms${r.outlier.reasons.length ? ` outlier: ${r.outlier.reasons.join(',')}` : ''}`);
    }
  }
  return exit;
}

async function queueCmd(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseFlags(
    rest,
    { data: { type: 'string', short: 'd' }, json: { type: 'boolean' }, after: { type: 'string' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    QUEUE_HELP,
  );
  if (values.help || (sub !== 'stats' && sub !== 'dropped') || !values.data) {
    (values.help ? io.out : io.err)(QUEUE_HELP);
    return values.help ? ExitCode.OK : SharedErrors.USAGE.exit;
  }
  if (sub === 'dropped') {
    const rows = readDropped(join(values.data, 'queue.db'), { afterOrd: numberFlag(values.after, 'after'), limit: numberFlag(values.limit, 'limit') });
    for (const d of rows) {
      io.out(values.json ? JSON.stringify(d) : `${d.ord}  ${new Date(d.at).toISOString()}  ${d.id}  priority ${d.priority}  ${d.bytes} bytes  ${d.reason}`);
    }
    if (!values.json && rows.length === 0) io.out('no dropped samples on record');
    return 0;
  }
  {
    const s = readQueueStats(join(values.data, 'queue.db'));
    if (values.json) io.out(JSON.stringify(s));
    else {
      io.out(`depth ${s.depth}  bytes ${s.bytes}  oldest ${s.oldestCreatedAt ? new Date(s.oldestCreatedAt).toISOString() : '-'}`);
      io.out(`enqueued ${s.enqueuedTotal}  acked ${s.ackedTotal}  duplicates ${s.duplicatesTotal}  evicted ${s.evictedTotal} (${s.evictedBytesTotal} bytes, ${s.droppedOnRecord} on record)`);
      for (const [p, v] of Object.entries(s.byPriority).sort(([a], [b]) => Number(b) - Number(a))) io.out(`  priority ${p}: ${v.depth} items, ${v.bytes} bytes`);
    }
  }
  return 0;
}
