import { z } from 'zod';
import { alertRecord } from './alerts.js';
import { detection, idString, isoTime, modelName, modelRef, outlierReason, schemaVersion, sha256Hex, topkEntry } from './common.js';
import { deviceRules } from './rule-sets.js';


/** Model slots one device serves at most (its status and telemetry list each one). */
export const MAX_MODEL_SLOTS = 16;
/** Inference request over MQTT (local broker) or as a JSON body on `POST /v1/infer`. */
export const inferRequest = z
  .object({
    type: z.literal('infer_request').default('infer_request'),
    v: schemaVersion.default(1),
    request_id: idString.optional(),
    /** Base64 image bytes (JPEG, PNG, WebP)... */
    image_b64: z.string().min(1).optional(),
    /** ...or a tensor for tabular/sensor models: flat, or nested rows. */
    tensor: z.union([z.array(z.number()), z.array(z.array(z.number()))]).optional(),
    /** Shape of `tensor` when flat; defaults to the model input with batch 1. */
    shape: z.array(z.number().int().positive()).optional(),
    /** Reply topic for MQTT requests. */
    reply_to: z.string().min(1).optional(),
    /** The model slot to ask (a package's model name) on an agent serving several; absent: the first. */
    model: modelName.optional(),
  })
  .refine((r) => (r.image_b64 === undefined) !== (r.tensor === undefined), 'exactly one of image_b64 or tensor is required');
export type InferRequest = z.infer<typeof inferRequest>;

export const outlierDecision = z.object({
  captured: z.boolean(),
  reasons: z.array(outlierReason),
  /** Reasons that matched but were not kept (rate limit, queue), for transparency. */
  suppressed: z.array(outlierReason).default([]),
  sample_id: idString.optional(),
});
export type OutlierDecision = z.infer<typeof outlierDecision>;

/** A detector's box: label, score, corners in the original image's pixels. */

/**
 * One inference's answer. For a detector, `detections` and `counts` (per label) carry the
 * boxes, and `label`/`index`/`score`/`topk` describe the best box ('' and 0 when none).
 */
export const inferResult = z.object({
  type: z.literal('infer_result'),
  v: schemaVersion,
  request_id: idString.optional(),
  label: z.string(),
  index: z.number().int().nonnegative(),
  score: z.number(),
  topk: z.array(topkEntry),
  model_name: z.string(),
  model_version: z.string(),
  latency_ms: z.number().nonnegative(),
  outlier: outlierDecision,
  /** Detection models: objects found, boxes [x1, y1, x2, y2] in original-image pixels (read by the alert rules). */
  detections: z.array(detection).optional(),
  /** Detection models: objects per label. */
  counts: z.record(z.string(), z.number().int().nonnegative()).optional(),
  /** Size of the original image the boxes are in (zones are relative to it). */
  frame: z.object({ width: z.number().positive(), height: z.number().positive() }).optional(),
});
export type InferResult = z.infer<typeof inferResult>;

export const inputStats = z.object({ brightness: z.number(), contrast: z.number() });

/** Metadata of a captured sample: everything a labeler and the learning loop need. */
export const sampleMeta = z.object({
  sample_id: idString,
  device_id: idString,
  captured_at: isoTime,
  model: modelRef,
  reasons: z.array(outlierReason).min(1),
  priority: z.number().int().min(0).max(9),
  prediction: z.object({ label: z.string(), index: z.number().int(), score: z.number(), topk: z.array(topkEntry) }),
  input: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('image'), content_type: z.string(), sha256: sha256Hex, bytes: z.number().int().nonnegative(), width: z.number().int().optional(), height: z.number().int().optional() }),
    z.object({ kind: z.literal('tensor'), sha256: sha256Hex, bytes: z.number().int().nonnegative(), shape: z.array(z.number().int()) }),
  ]),
  input_stats: inputStats.optional(),
  source: z.enum(['http', 'dir', 'mqtt', 'cli', 'ipc', 'camera']),
  /** Where the input came from (file name for the watched directory, camera name for a camera), for traceability. */
  origin: z.string().max(512).optional(),
  /** Shadow model's prediction, when shadow mode ran on this input. */
  shadow: z.object({ model: modelRef, label: z.string(), score: z.number() }).optional(),
  /** A detector's predicted boxes (original-image pixels), kept with the sample for the labeler. */
  detections: z.array(detection).max(1000).optional(),
  /** The alert this sample is the frame of (reason `alert`). */
  alert: alertRecord.optional(),
});
export type SampleMeta = z.infer<typeof sampleMeta>;

/**
 * A sample on the uplink. Blobs too large for one message (AWS IoT Core: 128 KB) are split:
 * each chunk repeats the meta and carries `chunk`; the receiver reassembles by sample_id and
 * checks the whole blob against `meta.input.sha256`.
 */
export const sampleMessage = z.object({
  type: z.literal('sample'),
  v: schemaVersion,
  meta: sampleMeta,
  blob_b64: z.string(),
  chunk: z.object({ index: z.number().int().nonnegative(), count: z.number().int().positive() }).optional(),
});
export type SampleMessage = z.infer<typeof sampleMessage>;

/** Fleet -> device: these samples are stored; the device may delete them (ack-then-delete). */
export const sampleAck = z.object({
  type: z.literal('sample_ack'),
  v: schemaVersion,
  sample_ids: z.array(idString).min(1).max(1000),
});
export type SampleAck = z.infer<typeof sampleAck>;

/**
 * Fleet -> device: these samples were refused for now; keep them. `scope: "device"` (rate
 * limit, daily quota): pause sending samples for `retry_after_ms`; `scope: "sample"` (too
 * large): only these wait, until their lease runs out. `code` is a catalogue code
 * (`SAMPLE_RATE_LIMITED`, `SAMPLE_TOO_LARGE`).
 */
export const sampleNack = z.object({
  type: z.literal('sample_nack'),
  v: schemaVersion,
  sample_ids: z.array(idString).max(1000),
  code: z.string().min(1).max(64),
  scope: z.enum(['sample', 'device']),
  retry_after_ms: z.number().int().nonnegative().max(7 * 86_400_000),
  message: z.string().max(512).optional(),
});
export type SampleNack = z.infer<typeof sampleNack>;

/** What the fleet sends on a device's acks topic. */
export const ackTopicMessage = z.discriminatedUnion('type', [sampleAck, sampleNack]);
export type AckTopicMessage = z.infer<typeof ackTopicMessage>;

const latency = z.object({ p50: z.number(), p95: z.number(), p99: z.number() });

const telemetryDrift = z.object({
  class_psi: z.number().nullable(),
  brightness_psi: z.number().nullable(),
  contrast_psi: z.number().nullable(),
  /** A detector's box count, score and size PSI (absent for a classifier). */
  box_count_psi: z.number().nullable().optional(),
  box_score_psi: z.number().nullable().optional(),
  box_size_psi: z.number().nullable().optional(),
});

const shadowWindow = z.object({ model: modelRef, count: z.number().int().nonnegative(), agreement: z.number().min(0).max(1).nullable(), confidence_mean: z.number().nullable(), latency_p95_ms: z.number().nullable() });

/** One model slot's figures over a telemetry window (an agent serving several models sends one per slot). */
export const modelWindow = z.object({
  model: modelRef,
  inference: z.object({ count: z.number().int().nonnegative(), errors: z.number().int().nonnegative(), rate_per_s: z.number().nonnegative(), latency_ms: latency }),
  confidence_mean: z.number().nullable(),
  outliers: z.object({ count: z.number().int().nonnegative(), rate: z.number().nonnegative(), by_reason: z.record(z.string(), z.number().int().nonnegative()) }),
  drift: telemetryDrift,
  shadow: shadowWindow.optional(),
});
export type ModelWindow = z.infer<typeof modelWindow>;

export const telemetry = z.object({
  type: z.literal('telemetry'),
  v: schemaVersion,
  device_id: idString,
  ts: isoTime,
  window_s: z.number().positive(),
  model: modelRef.nullable(),
  inference: z.object({ count: z.number().int().nonnegative(), errors: z.number().int().nonnegative(), rate_per_s: z.number().nonnegative(), latency_ms: latency }),
  confidence_mean: z.number().nullable(),
  outliers: z.object({ count: z.number().int().nonnegative(), rate: z.number().nonnegative(), by_reason: z.record(z.string(), z.number().int().nonnegative()) }),
  drift: telemetryDrift,
  queue: z.object({
    depth: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    quota_bytes: z.number().int().nonnegative(),
    evicted_total: z.number().int().nonnegative(),
    oldest_age_s: z.number().nonnegative().nullable(),
  }),
  shadow: shadowWindow.optional(),
  /**
   * Every model slot's figures, first slot first, on an agent serving several models (the
   * top-level `model`, `inference`, `confidence_mean`, `outliers`, `drift` and `shadow` are the
   * first slot's, as older fleets read them). Absent from agents with one model.
   */
  models: z.array(modelWindow).max(MAX_MODEL_SLOTS).optional(),
  /** One entry per configured camera (`inputs.cameras`): its state now and its frame counts over the window. */
  cameras: z
    .array(
      z.object({
        name: z.string().max(64),
        state: z.enum(['online', 'offline', 'frozen']),
        frames_in: z.number().int().nonnegative(),
        frames_dropped: z.number().int().nonnegative(),
        frames_processed: z.number().int().nonnegative(),
        frames_skipped: z.number().int().nonnegative(),
        reconnects: z.number().int().nonnegative(),
        /** The last problem (`AGENT_CAMERA_UNREACHABLE`, `AGENT_CAMERA_FROZEN`...), credentials redacted. */
        error: z.object({ code: z.string().max(64), message: z.string().max(512) }).optional(),
      }),
    )
    .max(64)
    .optional(),
  /** Present when the uplink is degraded: connected, but a subscription failed (see the agent's `/healthz`). */
  uplink: z.object({ degraded: z.string().max(512) }).optional(),
});
export type Telemetry = z.infer<typeof telemetry>;

export const deploymentPhase = z.enum(['downloading', 'verifying', 'staged', 'shadow', 'active', 'failed', 'rolled_back']);
export type DeploymentPhase = z.infer<typeof deploymentPhase>;

const deployment = z.object({ revision: z.number().int().nonnegative(), rollout_id: idString.optional(), target: modelRef, phase: deploymentPhase, reason: z.string().optional(), error_code: z.string().optional() });

/** One model slot of a device: the versions of one model name and where its deployment stands. */
export const modelSlot = z.object({
  name: modelName,
  active: modelRef.nullable(),
  previous: modelRef.nullable(),
  shadow: modelRef.nullable().default(null),
  installed: z.array(modelRef),
  deployment: deployment.optional(),
});
export type ModelSlot = z.infer<typeof modelSlot>;

/** Device -> fleet, retained: what the device runs and where its deployment stands. */
export const deviceStatus = z.object({
  type: z.literal('device_status'),
  v: schemaVersion,
  device_id: idString,
  ts: isoTime,
  online: z.boolean(),
  agent_version: z.string(),
  /** The first model slot (every installed version in `installed`), as older fleets read it. */
  models: z.object({ active: modelRef.nullable(), previous: modelRef.nullable(), installed: z.array(modelRef) }),
  /** The latest deployment report of any slot (older fleets follow one model). */
  deployment: deployment.optional(),
  /** Every model slot, the default (first) one first; absent from agents older than model slots. */
  slots: z.array(modelSlot).max(MAX_MODEL_SLOTS).optional(),
  /** The alert rule set the device runs (a fleet rule set, or its config's), and the last one it refused. */
  rules: deviceRules.optional(),
});
export type DeviceStatus = z.infer<typeof deviceStatus>;

const artifactRef = z.object({
  model: modelRef,
  /** Where the agent downloads the package (manifest.json and files relative to it). */
  base_url: z.string().url(),
  manifest_sha256: sha256Hex,
  /**
   * Per-file URLs that override `base_url` (keys: `manifest.json`, `files/<path>`). Used where
   * each object has its own signed URL, such as S3 presigned GETs in the AWS backend; a key
   * that is missing falls back to `base_url`.
   */
  urls: z.record(z.string(), z.string().url()).optional(),
});

/** Fleet -> device, retained per device: the model version it should run. */
export const desiredState = z.object({
  type: z.literal('desired_state'),
  v: schemaVersion,
  device_id: idString,
  /** Monotonic per device; a device ignores a revision older than the one it applied. */
  revision: z.number().int().nonnegative(),
  rollout_id: idString.optional(),
  issued_at: isoTime,
  /**
   * The model slot this desired state is for (a model name). Absent (older fleets): the slot of
   * the model `active` (else `shadow`) names, or the first slot when it names none.
   */
  model_name: modelName.optional(),
  active: artifactRef.nullable(),
  shadow: artifactRef.extend({ sample_rate: z.number().min(0).max(1).default(1) }).optional(),
});
export type DesiredState = z.infer<typeof desiredState>;

/** The model slot a desired state is for: its `model_name`, else the model it names (null: it names none). */
export function desiredSlotName(d: Pick<DesiredState, 'model_name' | 'active' | 'shadow'>): string | null {
  return d.model_name ?? d.active?.model.name ?? d.shadow?.model.name ?? null;
}

/** Answer to a request that could not be served (bad input, no model...). */
export const errorReply = z.object({
  type: z.literal('error'),
  v: schemaVersion,
  request_id: idString.optional(),
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ErrorReply = z.infer<typeof errorReply>;
