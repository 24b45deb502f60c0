import type { z } from 'zod';
import { EdgeloopError } from '../../../shared/errors.js';
import type { ModelRef } from '../../../shared/schemas/index.js';
import { formatIssues } from '../../../shared/validate.js';
import { datasetManifest } from '../../core/labels/dataset-schema.js';
import type { RolloutCommand } from '../../core/rollouts/types.js';
import type { SampleFilter, SampleQuery } from '../../app/samples/filter.js';
import {
  createDeviceResponse,
  datasetList,
  device,
  deviceList,
  errorResponse,
  exportDatasetResponse,
  healthResponse,
  historyResponse,
  issuedCertificate,
  labelProgress,
  lineageResponse,
  modelList,
  modelVersion,
  openApiResponse,
  pushModelResponse,
  rolloutDetail,
  rolloutList,
  sampleList,
  samplePage,
  sampleRecord,
  sampleStats,
  undoResponse,
  whoami,
  addUserResponse,
  auditPage,
  userInfo,
  userList,
} from '../http/schemas.js';
import type { addUserBody, boxesBody, createRolloutBody, exportDatasetBody } from '../http/schemas.js';
import { firingList, lineageChainResponse, reportResponse, runList, trainingModels, trainResponse } from '../http/training-schemas.js';
import type { trainBody } from '../http/training-schemas.js';
import { alertPage, storedAlert } from '../http/routes/alerts.js';
import { deployRuleSetResponse, ruleSetList, testRuleSetResponse, withdrawResponse } from '../http/routes/rule-sets.js';
import { signedRuleSet } from '../../../shared/schemas/index.js';
import type { AlertQuery } from '../../app/alerts/alerts.js';
import { exitCodeForCode, FleetClientError } from './errors.js';
import { tarDirectory } from './tar-pack.js';

/** Response types of the API, as the server's schemas define them. */
export type Device = z.output<typeof device>;
export type RegisteredDevice = z.output<typeof createDeviceResponse>;
export type IssuedCertificate = z.output<typeof issuedCertificate>;
export type ModelVersion = z.output<typeof modelVersion>;
export type PushResult = z.output<typeof pushModelResponse>;
export type Lineage = z.output<typeof lineageResponse>;
export type RolloutSummary = z.output<typeof rolloutList>['items'][number];
export type RolloutDetail = z.output<typeof rolloutDetail>;
export type SamplePage = z.output<typeof samplePage>;
export type SampleRecord = z.output<typeof sampleRecord>;
export type SampleStats = z.output<typeof sampleStats>;
export type LabelProgress = z.output<typeof labelProgress>;
export type ExportResult = z.output<typeof exportDatasetResponse>;
export type DatasetSummary = z.output<typeof datasetList>['items'][number];
export type DatasetManifest = z.output<typeof datasetManifest>;
export type CreateRollout = z.input<typeof createRolloutBody>;
export type ExportDataset = z.input<typeof exportDatasetBody>;
export type TrainingRunProgress = z.output<typeof trainResponse>;
export type TrainingRun = TrainingRunProgress['run'];
export type TrainBody = z.input<typeof trainBody>;
export type LineageChain = z.output<typeof lineageChainResponse>;
export type TriggerFiring = z.output<typeof firingList>['items'][number];
export type UserInfo = z.output<typeof userInfo>;
export type AddUser = z.input<typeof addUserBody>;
export type AddedUser = z.output<typeof addUserResponse>;
export type AuditPage = z.output<typeof auditPage>;
export type AlertPage = z.output<typeof alertPage>;
export type StoredAlert = z.output<typeof storedAlert>;
export type RuleSetInfo = z.output<typeof ruleSetList>['items'][number];
export type SignedRuleSetDoc = z.output<typeof signedRuleSet>;
export type RuleSetTestReport = z.output<typeof testRuleSetResponse>;

export interface FleetClientOptions {
  /** Base URL of the fleet service, e.g. `http://127.0.0.1:8600` (no `/v1`). */
  url: string;
  /** Bearer token of a user; without one only public routes answer. */
  token?: string | null;
  /** Injected for tests and proxies; default the global fetch. */
  fetch?: typeof fetch;
  /** Per-request timeout. Default 120 s: a push hashes every file of a package on the server. */
  timeoutMs?: number;
}

type QueryValue = string | number | boolean | readonly string[] | undefined;
type Query = Record<string, QueryValue>;

interface RequestOptions {
  query?: Query | undefined;
  body?: unknown;
  /** A streamed body of another type instead of JSON (an upload). */
  upload?: { contentType: string; body: AsyncIterable<Uint8Array> };
}

/** Encodes a query the way the server's `queryCoercer` reads it: arrays as repeated keys. */
function searchOf(q: Query | undefined): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v as readonly string[]) p.append(k, x);
    else p.append(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

const seg = encodeURIComponent;

/**
 * A typed client of the fleet's HTTP API (`/v1`, see `/v1/openapi.json`): one method per
 * route. Every answer is validated with the schema the server declares for the route, so a
 * caller gets exactly the documented shape or a `FLEET_RESPONSE_INVALID` error. Refusals keep
 * the server's code and status (`FLEET_FORBIDDEN`, `INPUT_INVALID`, ...) as an
 * {@link EdgeloopError}; a request that got no answer is `FLEET_UNREACHABLE`.
 */
export class FleetClient {
  readonly url: string;
  private readonly token: string | null;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(o: FleetClientOptions) {
    this.url = o.url.replace(/\/+$/, '');
    this.token = o.token ?? null;
    this.fetchFn = o.fetch ?? fetch;
    this.timeoutMs = o.timeoutMs ?? 120_000;
  }

  // ------------------------------------------------------------------ meta

  health(): Promise<z.output<typeof healthResponse>> {
    return this.json('GET', '/v1/healthz', healthResponse);
  }

  /** The user the token belongs to. */
  me(): Promise<z.output<typeof whoami>> {
    return this.json('GET', '/v1/me', whoami);
  }

  openApi(): Promise<Record<string, unknown>> {
    return this.json('GET', '/v1/openapi.json', openApiResponse);
  }

  // ------------------------------------------------------------------ devices

  /** Devices with every given tag (and the state, if given), by id. */
  async listDevices(filter: { tags?: Record<string, string>; state?: 'online' | 'offline' } = {}): Promise<Device[]> {
    const tag = Object.entries(filter.tags ?? {}).map(([k, v]) => `${k}:${v}`);
    return (await this.json('GET', '/v1/devices', deviceList, { query: { tag, state: filter.state } })).items;
  }

  getDevice(id: string): Promise<Device> {
    return this.json('GET', `/v1/devices/${seg(id)}`, device);
  }

  /**
   * Register a device: its secret is in the answer once, with a ready agent config. With
   * `publicKey` (PEM), the fleet CA certifies it too and the config logs in with the certificate.
   */
  registerDevice(name: string, tags: Record<string, string> = {}, cert?: { publicKey: string; days?: number }): Promise<RegisteredDevice> {
    return this.json('POST', '/v1/devices', createDeviceResponse, { body: { name, tags, ...(cert ? { public_key: cert.publicKey, ...(cert.days ? { cert_days: cert.days } : {}) } : {}) } });
  }

  /** A new certificate for the device's new public key (rotation); the previous one is refused from then on. */
  issueCertificate(id: string, publicKey: string, days?: number): Promise<IssuedCertificate> {
    return this.json('POST', `/v1/devices/${seg(id)}/certificate`, issuedCertificate, { body: { public_key: publicKey, ...(days ? { days } : {}) } });
  }

  /** Revoke the device's certificate. */
  revokeCertificate(id: string): Promise<Device> {
    return this.json('POST', `/v1/devices/${seg(id)}/certificate/revoke`, device);
  }

  // ------------------------------------------------------------------ models

  async listModels(filter: { name?: string; status?: 'registered' | 'rejected' } = {}): Promise<ModelVersion[]> {
    return (await this.json('GET', '/v1/models', modelList, { query: { name: filter.name, status: filter.status } })).items;
  }

  getModel(ref: ModelRef): Promise<ModelVersion> {
    return this.json('GET', `/v1/models/${seg(ref.name)}/${seg(ref.version)}`, modelVersion);
  }

  async modelLineage(ref: ModelRef): Promise<Lineage['items']> {
    return (await this.json('GET', `/v1/models/${seg(ref.name)}/${seg(ref.version)}/lineage`, lineageResponse)).items;
  }

  /**
   * Upload the package in the local directory `dir` (manifest.json and its files) and register
   * it: the directory goes as a streamed tar, so it may be on any machine. `force` registers
   * a package without golden inputs (refused otherwise).
   */
  async pushModel(dir: string, opts: { force?: boolean } = {}): Promise<PushResult> {
    return this.json('POST', opts.force ? '/v1/models?force=true' : '/v1/models', pushModelResponse, { upload: { contentType: 'application/x-tar', body: await tarDirectory(dir) } });
  }

  // ------------------------------------------------------------------ users, audit

  async listUsers(): Promise<UserInfo[]> {
    return (await this.json('GET', '/v1/users', userList)).items;
  }

  /** Add a user; the answer holds its token, once. */
  addUser(body: AddUser): Promise<AddedUser> {
    return this.json('POST', '/v1/users', addUserResponse, { body });
  }

  /** Revoke a user: its token and console sessions end at once. */
  revokeUser(name: string): Promise<UserInfo> {
    return this.json('POST', `/v1/users/${seg(name)}/revoke`, userInfo);
  }

  /** A page of the audit log, newest first. */
  audit(query: { before?: number; limit?: number; actor?: string } = {}): Promise<AuditPage> {
    return this.json('GET', '/v1/audit', auditPage, { query });
  }

  // ------------------------------------------------------------------ alerts

  /** Alerts raised by device rules, newest first. */
  listAlerts(query: AlertQuery = {}): Promise<AlertPage> {
    return this.json('GET', '/v1/alerts', alertPage, { query: query as Record<string, string | number | undefined> });
  }

  /** Acknowledge an alert (operator role). */
  ackAlert(id: string): Promise<StoredAlert> {
    return this.json('POST', `/v1/alerts/${seg(id)}/ack`, storedAlert);
  }

  /** Resolve an alert (operator role). */
  resolveAlert(id: string): Promise<StoredAlert> {
    return this.json('POST', `/v1/alerts/${seg(id)}/resolve`, storedAlert);
  }

  // ------------------------------------------------------------------ rule sets

  async listRuleSets(): Promise<RuleSetInfo[]> {
    return (await this.json('GET', '/v1/rule-sets', ruleSetList)).items;
  }

  /** Store a rule set as the next version of `name` (operator role); every bad key named on refusal. */
  pushRuleSet(name: string, rules: unknown): Promise<SignedRuleSetDoc> {
    return this.json('POST', '/v1/rule-sets', signedRuleSet, { body: { name, rules } });
  }

  getRuleSet(name: string, version: number): Promise<SignedRuleSetDoc> {
    return this.json('GET', `/v1/rule-sets/${seg(name)}/${version}`, signedRuleSet);
  }

  /** Send `name@version` to the devices holding every tag of `selector` (operator role). */
  deployRuleSet(name: string, version: number, selector: Record<string, string>): Promise<z.output<typeof deployRuleSetResponse>> {
    return this.json('POST', `/v1/rule-sets/${seg(name)}/${version}/deploy`, deployRuleSetResponse, { body: { selector } });
  }

  /** Devices matching `selector` drop the fleet rule set and run their config's rules (operator role). */
  async withdrawRuleSet(selector: Record<string, string>): Promise<string[]> {
    return (await this.json('POST', '/v1/rule-sets/withdraw', withdrawResponse, { body: { selector } })).devices;
  }

  /** Replay a rule set over stored samples: what would have fired. */
  testRuleSet(rules: unknown, samples: SampleFilter, maxSamples?: number): Promise<RuleSetTestReport> {
    return this.json('POST', '/v1/rule-sets/test', testRuleSetResponse, { body: { rules, samples, ...(maxSamples !== undefined ? { max_samples: maxSamples } : {}) } });
  }

  // ------------------------------------------------------------------ rollouts

  async listRollouts(): Promise<RolloutSummary[]> {
    return (await this.json('GET', '/v1/rollouts', rolloutList)).items;
  }

  getRollout(id: string): Promise<RolloutDetail> {
    return this.json('GET', `/v1/rollouts/${seg(id)}`, rolloutDetail);
  }

  createRollout(body: CreateRollout): Promise<RolloutDetail> {
    return this.json('POST', '/v1/rollouts', rolloutDetail, { body });
  }

  /** `POST /v1/rollouts/:id/{pause,resume,abort,rollback,promote}`; `force` is for promote. */
  commandRollout(id: string, command: RolloutCommand, opts: { force?: boolean; devices?: string[] } = {}): Promise<RolloutDetail> {
    return this.json('POST', `/v1/rollouts/${seg(id)}/${command}`, rolloutDetail, { body: { ...(opts.force ? { force: true } : {}), ...(opts.devices ? { devices: opts.devices } : {}) } });
  }

  // ------------------------------------------------------------------ samples, labels

  listSamples(query: SampleQuery = {}): Promise<SamplePage> {
    return this.json('GET', '/v1/samples', samplePage, { query: query as Query });
  }

  /** Per-device accounting: stored (all time), resends, refusals and rate-limited messages (since the fleet started). */
  sampleStats(): Promise<SampleStats> {
    return this.json('GET', '/v1/samples/stats', sampleStats);
  }

  getSample(id: string): Promise<SampleRecord> {
    return this.json('GET', `/v1/samples/${seg(id)}`, sampleRecord);
  }

  /** The sample's input bytes and the content type the server serves them as. */
  async sampleBlob(id: string): Promise<{ bytes: Buffer; contentType: string }> {
    const res = await this.send('GET', `/v1/samples/${seg(id)}/blob`, {});
    const bytes = Buffer.from(await res.arrayBuffer());
    return { bytes, contentType: res.headers.get('content-type') ?? 'application/octet-stream' };
  }

  async sampleHistory(id: string): Promise<z.output<typeof historyResponse>['items']> {
    return (await this.json('GET', `/v1/samples/${seg(id)}/history`, historyResponse)).items;
  }

  labelSample(id: string, label: string): Promise<SampleRecord> {
    return this.json('POST', `/v1/samples/${seg(id)}/label`, sampleRecord, { body: { label } });
  }

  /** Label a detection sample with boxes `[x1, y1, x2, y2]` in its image's pixels (`[]`: nothing in it). */
  labelBoxes(id: string, boxes: z.input<typeof boxesBody>['boxes']): Promise<SampleRecord> {
    return this.json('POST', `/v1/samples/${seg(id)}/boxes`, sampleRecord, { body: { boxes } });
  }

  confirmSample(id: string): Promise<SampleRecord> {
    return this.json('POST', `/v1/samples/${seg(id)}/confirm`, sampleRecord);
  }

  skipSample(id: string): Promise<SampleRecord> {
    return this.json('POST', `/v1/samples/${seg(id)}/skip`, sampleRecord);
  }

  undoLabel(): Promise<z.output<typeof undoResponse>> {
    return this.json('POST', '/v1/labels/undo', undoResponse);
  }

  labelProgress(filter: SampleFilter = {}): Promise<LabelProgress> {
    return this.json('GET', '/v1/labels/progress', labelProgress, { query: filter as Query });
  }

  async nextToLabel(filter: Omit<SampleFilter, 'labeled'> & { n?: number } = {}): Promise<SampleRecord[]> {
    return (await this.json('GET', '/v1/labels/next', sampleList, { query: filter as Query })).items;
  }

  // ------------------------------------------------------------------ datasets

  exportDataset(body: ExportDataset = {}): Promise<ExportResult> {
    return this.json('POST', '/v1/datasets', exportDatasetResponse, { body });
  }

  async listDatasets(): Promise<DatasetSummary[]> {
    return (await this.json('GET', '/v1/datasets', datasetList)).items;
  }

  getDataset(id: string): Promise<DatasetManifest> {
    return this.json('GET', `/v1/datasets/${seg(id)}`, datasetManifest);
  }

  // ------------------------------------------------------------------ training

  /** The manual trigger: starts a run, answers at once (202) with it. */
  train(body: TrainBody = {}): Promise<TrainingRunProgress> {
    return this.json('POST', '/v1/training/runs', trainResponse, { body });
  }

  /** A run and its progress lines after `after`. */
  trainingRun(id: string, after = 0): Promise<TrainingRunProgress> {
    return this.json('GET', `/v1/training/runs/${seg(id)}`, trainResponse, { query: { after } });
  }

  async listTrainingRuns(filter: { model?: string; limit?: number } = {}): Promise<TrainingRun[]> {
    return (await this.json('GET', '/v1/training/runs', runList, { query: filter })).items;
  }

  trainingReport(id: string): Promise<Record<string, unknown>> {
    return this.json('GET', `/v1/training/runs/${seg(id)}/report`, reportResponse);
  }

  async triggerFirings(filter: { model?: string; limit?: number } = {}): Promise<TriggerFiring[]> {
    return (await this.json('GET', '/v1/training/triggers', firingList, { query: filter })).items;
  }

  async trainingModels(): Promise<z.output<typeof trainingModels>['items']> {
    return (await this.json('GET', '/v1/training/models', trainingModels)).items;
  }

  /** The full lineage chain: versions, their runs, datasets, samples, devices and labels. */
  modelLineageChain(ref: ModelRef, o: { entries?: boolean } = {}): Promise<LineageChain> {
    return this.json('GET', `/v1/models/${seg(ref.name)}/${seg(ref.version)}/lineage/full`, lineageChainResponse, { query: { entries: o.entries } });
  }

  // ------------------------------------------------------------------ transport

  private async json<S extends z.ZodType>(method: 'GET' | 'POST', path: string, schema: S, o: RequestOptions = {}): Promise<z.output<S>> {
    const res = await this.send(method, path, o);
    const text = await res.text();
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new FleetClientError('RESPONSE_INVALID', `${method} ${path} answered ${res.status} with a body that is not JSON`, { cause: err });
    }
    const r = schema.safeParse(data);
    if (!r.success) {
      const issues = formatIssues(r.error.issues);
      throw new FleetClientError('RESPONSE_INVALID', `${method} ${path} answered with an unexpected shape: ${issues.slice(0, 3).join('; ')}`, { details: { issues } });
    }
    return r.data as z.output<S>;
  }

  /** One request; any non-2xx answer becomes the server's error, with its code and status. */
  private async send(method: 'GET' | 'POST', path: string, o: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // Every POST sends a body: an upload's stream, else JSON (possibly `{}`: the server reads an empty body as `{}` too).
    let body: string | AsyncIterable<Uint8Array> | undefined;
    if (o.upload) {
      body = o.upload.body;
      headers['content-type'] = o.upload.contentType;
    } else if (method === 'POST') {
      body = JSON.stringify(o.body ?? {});
      headers['content-type'] = 'application/json';
    }
    const target = `${this.url}${path}${searchOf(o.query)}`;
    let res: Response;
    try {
      // A stream goes out chunked as it is read (`duplex: 'half'`, which fetch requires for one).
      const init = { method, headers, signal: AbortSignal.timeout(this.timeoutMs), ...(body === undefined ? {} : typeof body === 'string' ? { body } : { body: body as unknown as ReadableStream, duplex: 'half' }) } as RequestInit;
      res = await this.fetchFn(target, init);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new FleetClientError('UNREACHABLE', `cannot reach the fleet service at ${this.url} (${why}); is it running (edgeloop serve)?`, { cause: err, details: { url: this.url } });
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let parsed: z.output<typeof errorResponse> | null = null;
    try {
      const r = errorResponse.safeParse(JSON.parse(text));
      parsed = r.success ? r.data : null;
    } catch {
      parsed = null;
    }
    if (!parsed) throw new FleetClientError('RESPONSE_INVALID', `${method} ${path} answered HTTP ${res.status} without an error body`, { details: { status: res.status } });
    throw new EdgeloopError(parsed.error.code, parsed.error.message, { status: res.status, exit: exitCodeForCode(parsed.error.code), ...(parsed.error.details ? { details: parsed.error.details } : {}) });
  }
}
