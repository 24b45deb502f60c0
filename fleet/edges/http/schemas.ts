/**
 * Request and response schemas of the HTTP API. Everything the library already defines with
 * zod is reused as is (rollout plan and state, decisions, sample filter and query, dataset
 * manifest, the wire messages in shared/); what the library only has as TypeScript
 * interfaces (device, model version, sample record, label event...) is described here, and
 * each handler's return type is checked against these at compile time (see `route()`), so
 * the OpenAPI document generated from them cannot drift from what the API sends.
 */
import { z } from 'zod';
import { deviceStatus, idString, modelSlot, inputStats, isoTime, modelName, modelRef, outlierReason, packageFile, sampleMeta, semver, sha256Hex, telemetry, topkEntry } from '../../../shared/schemas/index.js';
import { gateResult, rolloutDetail, rolloutSummary, stageInfo } from '../../app/read-models/rollouts.js';
import { role } from '../../app/users.js';
import { datasetManifest } from '../../core/labels/dataset-schema.js';
import { rolloutPlan } from '../../core/rollouts/types.js';
import { sampleFilterSchema } from '../../app/samples/filter.js';
import { trainingRequestNames, trainingResponseNames } from './training-schemas.js';

// ---------------------------------------------------------------- errors, meta

export const errorResponse = z.object({
  error: z.object({
    /** Stable code from the catalogue (fleet/errors.ts, shared/errors.ts). */
    code: z.string(),
    message: z.string(),
    /** Structured context (validation issues, ids); never sent with 5xx answers. */
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const healthResponse = z.object({ status: z.literal('ok'), time: isoTime });

export const openApiResponse = z.record(z.string(), z.unknown());

// ---------------------------------------------------------------- devices

const tagMap = z.record(z.string(), z.string());

export const deviceHealth = z.object({
  inference_rate_per_s: z.number(),
  latency_p95_ms: z.number(),
  outlier_rate: z.number(),
  drift_psi: z.object({ class: z.number().nullable(), brightness: z.number().nullable(), contrast: z.number().nullable() }),
  queue: z.object({ depth: z.number().int(), bytes: z.number().int(), evicted_total: z.number().int() }),
});

const deviceCertificate = z.object({
  sha256: z.string().describe('sha256 of the certificate (DER), hex: the only certificate of this device the broker accepts'),
  serial: z.string(),
  issued_at: isoTime,
  not_after: isoTime,
  revoked_at: isoTime.nullable(),
});

export const device = z.object({
  id: idString,
  tags: tagMap,
  created_at: isoTime,
  secret_set_at: isoTime,
  state: z.enum(['online', 'offline']),
  last_seen: isoTime.nullable(),
  offline_at: isoTime.nullable(),
  agent_version: z.string().nullable(),
  models: z.object({ active: modelRef.nullable(), previous: modelRef.nullable(), installed: z.array(modelRef), staged: modelRef.nullable() }),
  deployment: deviceStatus.shape.deployment.unwrap().nullable(),
  /** Every model slot the device reported (a device serving several models); null from agents older than model slots. */
  slots: z.array(modelSlot).nullable(),
  health: deviceHealth.nullable(),
  telemetry: telemetry.nullable(),
  /** How the device logs in to the broker: its certificate, or null (its secret). */
  certificate: deviceCertificate.nullable(),
});

export const deviceList = z.object({ items: z.array(device) });

export const deviceParams = z.strictObject({ id: idString });

export const deviceQuery = z.strictObject({
  /** `key:value`, repeatable; every tag must match. The key ends at the first `:`. */
  tag: z.array(z.string().regex(/^[^:]+:/, 'a tag filter is key:value')).optional(),
  state: z.enum(['online', 'offline']).optional(),
});

const publicKeyPem = z.string().min(1).max(16_384).describe('the device\'s public key, PEM (SPKI): EC P-256 (what `edgeloop devices register --cert` makes), P-384, RSA >= 2048 or Ed25519; the private key stays with the caller');
const certDays = z.number().int().min(1).max(3650).optional().describe('certificate validity in days (default 365)');

export const createDeviceBody = z.strictObject({
  /** Becomes the device id (and MQTT username). */
  name: idString,
  tags: tagMap.default({}),
  /** With it, the fleet CA certifies the key and the agent config logs in with the certificate over TLS. */
  public_key: publicKeyPem.optional(),
  cert_days: certDays,
});

export const issueCertificateBody = z.strictObject({ public_key: publicKeyPem, days: certDays });

/** A certificate just issued by the fleet CA; only its sha256, serial and expiry are stored. */
export const issuedCertificate = z.object({
  device_id: idString,
  pem: z.string(),
  ca_pem: z.string(),
  sha256: z.string(),
  serial: z.string(),
  not_after: isoTime,
});

/** The keys of the agent config (agent/config.ts) the fleet fills in for a new device. */
export const agentConfigSnippet = z.object({
  device_id: idString,
  tags: tagMap,
  fleet_public_key: z.string(),
  fleet_token: z.string(),
  uplink: z.union([
    z.object({ kind: z.literal('mqtt'), url: z.string(), username: z.string(), password: z.string() }),
    /** Certificate login: file names relative to the config file, as `edgeloop devices register --cert` writes them. */
    z.object({ kind: z.literal('mqtt'), url: z.string(), tls: z.object({ ca: z.string(), cert: z.string(), key: z.string() }) }),
  ]),
});

export const createDeviceResponse = z.object({
  device,
  /** Shown once; only its hash is stored. */
  secret: z.string(),
  agent_config: agentConfigSnippet,
  /** When `public_key` was sent. */
  certificate: issuedCertificate.optional(),
});

// ---------------------------------------------------------------- models

const fileRole = packageFile.shape.role.unwrap();

export const modelVersion = z.object({
  name: modelName,
  version: semver,
  ref: z.string(),
  created_at: isoTime,
  pushed_at: isoTime,
  pushed_by: z.string(),
  manifest_sha256: sha256Hex,
  content_sha256: sha256Hex,
  key_id: z.string(),
  model_file: z.string(),
  total_bytes: z.number().int().nonnegative(),
  description: z.string().nullable(),
  files: z.array(z.object({ path: z.string(), sha256: sha256Hex, bytes: z.number().int().nonnegative(), role: fileRole })),
  evaluation: z.record(z.string(), z.unknown()).nullable(),
  lineage: z.object({ dataset_version: z.string().nullable(), training_run: z.string().nullable(), parent: modelRef.nullable() }),
  status: z.enum(['registered', 'rejected']),
  status_reasons: z.array(z.string()),
  status_at: isoTime.nullable(),
  status_by: z.string().nullable(),
});

export const modelList = z.object({ items: z.array(modelVersion) });

export const pushModelQuery = z.strictObject({
  force: z
    .enum(['true', 'false'])
    .optional()
    .transform((v) => v === 'true')
    .describe('`true` registers a package without golden inputs (refused otherwise with `FLEET_GOLDEN_MISSING`: no device could smoke-test it before switching).'),
});
export const modelQuery = z.strictObject({ name: modelName.optional(), status: z.enum(['registered', 'rejected']).optional() });

export const modelParams = z.strictObject({ name: modelName, version: semver });

export const packageFileParams = modelParams.extend({ path: z.string().min(1) });

export const lineageEntry = z.object({
  name: z.string(),
  version: z.string(),
  dataset_version: z.string().nullable(),
  training_run: z.string().nullable(),
  pushed_at: isoTime.nullable(),
  missing: z.boolean(),
});

export const lineageResponse = z.object({ items: z.array(lineageEntry) });

export const pushModelResponse = z.object({
  version: modelVersion,
  /** false: this exact content was already registered (a no-op). */
  created: z.boolean(),
  /** Files in the uploaded package the manifest does not list (not stored). */
  unlisted: z.array(z.string()),
});

// ---------------------------------------------------------------- rollouts

export const rolloutParams = z.strictObject({ id: idString });

export const createRolloutBody = z.strictObject({
  model: modelRef,
  /** Device tags every target must have; `{}` targets the whole fleet. */
  selector: tagMap,
  /** Stages, gates and failure policy; omitted: the defaults (canary 5%, waves 25/50/100%). */
  plan: rolloutPlan.optional(),
  id: idString.optional(),
});

export const commandBody = z.strictObject({
  /** promote only: move on although the stage's gates do not pass. */
  force: z.boolean().optional(),
  /** exclude only: the unconfirmed devices to take out of the rollout. */
  devices: z.array(idString).min(1).max(10_000).optional(),
});

export { gateResult, rolloutDetail, rolloutSummary, stageInfo };

export const rolloutList = z.object({ items: z.array(rolloutSummary) });

// ---------------------------------------------------------------- samples, labels, datasets

export const sampleParams = z.strictObject({ id: idString });

export const currentLabel = z.object({ state: z.enum(['labeled', 'skipped']), value: z.string().nullable(), by: z.string(), at: isoTime });

export const sampleRecord = z.object({
  sample_id: idString,
  device_id: idString,
  site: z.string().nullable(),
  reasons: z.array(outlierReason),
  model: modelRef,
  prediction: z.object({ label: z.string(), index: z.number().int(), score: z.number(), topk: z.array(topkEntry) }),
  confidence: z.number(),
  captured_at: isoTime,
  received_at: isoTime,
  blob: z.object({ sha256: sha256Hex, bytes: z.number().int().nonnegative(), content_type: z.string().nullable() }),
  input_stats: inputStats.nullable(),
  shadow: z.object({ model: modelRef, label: z.string(), score: z.number() }).nullable(),
  label: currentLabel.nullable(),
  meta: sampleMeta,
});

export const samplePage = z.object({ items: z.array(sampleRecord), next_cursor: z.string().nullable() });

const count = z.number().int().nonnegative();
export const sampleStats = z.object({
  /** Per device: stored (all time) and, since the fleet started, resends, refusals and rate-limited messages. */
  devices: z.array(z.object({ device_id: z.string(), stored: count, duplicates: count, rejected: count, rate_limited: count })),
  totals: z.object({ stored: count, received: count, duplicates: count, rejected: count, rate_limited: count, pending_chunk_sets: count, pending_chunk_bytes: count }),
});

export const labelBody = z.strictObject({ label: z.string() });

export const labelEvent = z.object({
  id: z.number().int(),
  sample_id: idString,
  action: z.enum(['assign', 'confirm', 'skip']),
  label: z.string().nullable(),
  actor: z.string(),
  at: isoTime,
  undone_at: isoTime.nullable(),
  undone_by: z.string().nullable(),
});

export const historyResponse = z.object({ items: z.array(labelEvent) });

/** Both null when the caller has nothing left to undo. */
export const undoResponse = z.object({ undone: labelEvent.nullable(), sample: sampleRecord.nullable() });

export const labelProgress = z.object({ total: z.number().int(), labeled: z.number().int(), skipped: z.number().int(), unlabeled: z.number().int() });

export const nextQuery = sampleFilterSchema.omit({ labeled: true }).extend({ n: z.number().int().positive().max(1000).default(20) });

export const sampleList = z.object({ items: z.array(sampleRecord) });

export const datasetParams = z.strictObject({ id: sha256Hex });

export const exportDatasetBody = z.strictObject({
  /** Which labeled samples; omitted: every labeled sample. */
  filters: sampleFilterSchema.optional(),
  name: z.string().min(1).max(128).optional(),
});

export const exportDatasetResponse = z.object({ dataset: datasetManifest, created: z.boolean() });

export const datasetSummary = z.object({
  id: sha256Hex,
  name: z.string().nullable(),
  created_at: isoTime,
  created_by: z.string(),
  entries: z.number().int(),
  counts: z.record(z.string(), z.number().int()),
  manifest_sha256: sha256Hex,
});

export const datasetList = z.object({ items: z.array(datasetSummary) });

export const whoami = z.object({ name: z.string(), role });

// ---------------------------------------------------------------- users, audit

export const userParams = z.strictObject({ name: z.string().min(1).max(64) });

export const userInfo = z.object({
  name: z.string(),
  role,
  created_at: isoTime,
  created_by: z.string().nullable(),
  /** null: the token never expires. */
  expires_at: isoTime.nullable(),
  revoked_at: isoTime.nullable(),
  /** Neither revoked nor expired. */
  active: z.boolean(),
});

export const userList = z.object({ items: z.array(userInfo) });

export const addUserBody = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'letters, digits and . _ @ -, at most 64'),
  role,
  /** Token lifetime in seconds; absent: never expires. */
  expires_in_s: z.number().int().positive().max(10 * 365 * 86400).optional(),
});

export const addUserResponse = z.object({
  user: userInfo,
  /** The bearer token, shown this once: only its hash is stored. */
  token: z.string(),
});

export const auditEntry = z.object({
  seq: z.number().int(),
  at: isoTime,
  actor: z.string(),
  action: z.string(),
  target: z.string(),
  details: z.record(z.string(), z.unknown()).nullable(),
});

export const auditPage = z.object({
  items: z.array(auditEntry),
  /** Pass as `before` for the next (older) page; null on the last. */
  next_before: z.number().int().nullable(),
});

/**
 * Names under which schemas appear in the OpenAPI document's `components.schemas`; a schema
 * used inside another is referenced by name there.
 */
export const responseNames = new Map<z.ZodType, string>([
  [errorResponse, 'Error'],
  [healthResponse, 'Health'],
  [device, 'Device'],
  [deviceList, 'DeviceList'],
  [createDeviceResponse, 'RegisteredDevice'],
  [agentConfigSnippet, 'AgentConfigSnippet'],
  [issuedCertificate, 'IssuedCertificate'],
  [modelVersion, 'ModelVersion'],
  [modelList, 'ModelList'],
  [lineageResponse, 'Lineage'],
  [pushModelResponse, 'PushResult'],
  [rolloutSummary, 'RolloutSummary'],
  [rolloutList, 'RolloutList'],
  [rolloutDetail, 'RolloutDetail'],
  [gateResult, 'GateResult'],
  [sampleRecord, 'Sample'],
  [samplePage, 'SamplePage'],
  [sampleList, 'SampleList'],
  [labelEvent, 'LabelEvent'],
  [historyResponse, 'LabelHistory'],
  [undoResponse, 'UndoResult'],
  [labelProgress, 'LabelProgress'],
  [exportDatasetResponse, 'ExportResult'],
  [datasetManifest, 'DatasetManifest'],
  [datasetSummary, 'DatasetSummary'],
  [datasetList, 'DatasetList'],
  [whoami, 'User'],
  [userInfo, 'UserInfo'],
  [userList, 'UserList'],
  [addUserResponse, 'AddedUser'],
  [auditEntry, 'AuditEntry'],
  [auditPage, 'AuditPage'],
  ...trainingResponseNames,
]);

export const requestNames = new Map<z.ZodType, string>([
  [createDeviceBody, 'CreateDevice'],
  [issueCertificateBody, 'IssueCertificate'],
  [addUserBody, 'AddUser'],
  [createRolloutBody, 'CreateRollout'],
  [rolloutPlan, 'RolloutPlan'],
  [commandBody, 'RolloutCommand'],
  [labelBody, 'AssignLabel'],
  [exportDatasetBody, 'ExportDataset'],
  [sampleFilterSchema, 'SampleFilter'],
  ...trainingRequestNames,
]);
