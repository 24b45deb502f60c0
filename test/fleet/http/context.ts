import { tarDirectory } from '../../../fleet/edges/client/tar-pack.js';
import type { UploadLimits } from '../../../fleet/app/models/staging.js';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { openFsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import type { Role } from '../../../fleet/app/users.js';
import type { FleetContext } from '../../../fleet/app/context.js';
import { buildFleet } from '../../../fleet/boot/build.js';
import { createFleetHttp } from '../../../fleet/edges/server.js';
import type { RolloutBackend } from '../../../fleet/app/rollouts/backend.js';
import type { DesiredChange } from '../../../fleet/core/rollouts/types.js';
import { sha256Hex } from '../../../shared/ids.js';
import { sampleMessage } from '../../../shared/schemas/index.js';
import type { OutlierReason, RuleSetMessage, SampleMessage } from '../../../shared/schemas/index.js';
import type { RuleSetDelivery } from '../../../fleet/app/rules/rule-sets.js';
import { fleetKeys, patternImage, tempDir } from '../../helpers/packages.js';

export const T0 = Date.parse('2025-03-01T10:00:00Z');

export interface TestFleet {
  ctx: FleetContext;
  /** Fake time: starts at T0, moves only when told. */
  clock: { now: () => number; set: (ms: number) => void; advance: (ms: number) => void };
  /** Every desired-state delivery the rollout manager made. */
  deliveries: Array<{ rollout: string; changes: readonly DesiredChange[] }>;
  /** Every rule-set message the fleet sent to a device. */
  ruleDeliveries: RuleSetMessage[];
  /** Parsed pino lines of the whole context (the HTTP layer's included). */
  logs: Array<Record<string, unknown>>;
  tokens: Record<Role, string>;
  dir: string;
  /** Base URL once {@link TestFleet.listen} ran (`http://127.0.0.1:<port>`). */
  url: string;
  listen(): Promise<string>;
  close(): Promise<void>;
}

/**
 * A real FleetContext over temp files: SQLite database, filesystem artifact store, model
 * registry with the test fleet key, device registry (cheap scrypt), sample ingest, labels,
 * datasets, users (one per role, tokens in `tokens`) and a rollout manager on the SQLite
 * repository whose backend records deliveries instead of publishing them.
 */
export async function openTestFleet(o: { uploadLimits?: Partial<UploadLimits> } = {}): Promise<TestFleet> {
  const t = tempDir('edgeloop-http-');
  let now = T0;
  const clock = { now: () => now, set: (ms: number) => void (now = ms), advance: (ms: number) => void (now += ms) };
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const artifacts = await openFsArtifactStore({ dir: join(t.dir, 'artifacts') });
  const deliveries: TestFleet['deliveries'] = [];
  const ruleDeliveries: RuleSetMessage[] = [];
  const ruleSetDelivery: RuleSetDelivery = {
    deliver: (m) => {
      ruleDeliveries.push(...m);
      return Promise.resolve();
    },
  };
  const backend: RolloutBackend = {
    name: 'recording',
    deliver: (rollout, changes) => {
      deliveries.push({ rollout, changes });
      return Promise.resolve();
    },
  };
  // The service's own wiring (boot/build.ts), on a plain artifact directory, cheap device
  // hashes, fake time and a backend that records deliveries instead of publishing them.
  const built = await buildFleet({ dataDir: t.dir, signingKey: fleetKeys(), log, clock, artifacts, deviceScrypt: { N: 1024, r: 8, p: 1 }, rolloutBackend: () => backend, ruleSetDelivery: () => ruleSetDelivery, urls: { mqtt: 'mqtt://127.0.0.1:1883', http: '' }, ...(o.uploadLimits ? { uploadLimits: o.uploadLimits } : {}) });
  const ctx = built.ctx;
  const users = ctx.users;
  const tokens = {
    admin: users.issue('ada', 'admin').token,
    operator: users.issue('otto', 'operator').token,
    labeler: users.issue('lena', 'labeler').token,
    viewer: users.issue('vic', 'viewer').token,
  };
  let server: Server | null = null;
  const fleet: TestFleet = {
    ctx,
    clock,
    deliveries,
    ruleDeliveries,
    logs,
    tokens,
    dir: t.dir,
    url: '',
    async listen() {
      server = createFleetHttp(ctx);
      const s = server;
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      fleet.url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
      ctx.urls.http = fleet.url;
      return fleet.url;
    },
    async close() {
      const s = server;
      if (s) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
      await built.close();
      t.cleanup();
    },
  };
  return fleet;
}

export interface SeedSample {
  id: string;
  device: string;
  label: string;
  score: number;
  /** The labels the model knows; topk is built from them. Default: the predicted label and one other. */
  labels?: string[];
  model?: { name: string; version: string };
  reasons?: OutlierReason[];
  capturedAt?: number;
  seed?: number;
}

/** A sample message as an agent sends it, around a real PNG. */
export async function sampleMessageOf(s: SeedSample): Promise<SampleMessage> {
  const png = await patternImage(s.seed ?? s.id.length * 7 + s.id.charCodeAt(s.id.length - 1), { width: 32, height: 32, channels: 1 });
  const labels = s.labels ?? [s.label, s.label === 'other' ? 'else' : 'other'];
  const index = Math.max(0, labels.indexOf(s.label));
  const rest = labels.filter((l) => l !== s.label).slice(0, 2);
  const topk = [{ label: s.label, index, score: s.score }, ...rest.map((label, i) => ({ label, index: labels.indexOf(label), score: (1 - s.score) / (i + 2) }))];
  return sampleMessage.parse({
    type: 'sample',
    v: 1,
    meta: {
      sample_id: s.id,
      device_id: s.device,
      captured_at: new Date(s.capturedAt ?? T0).toISOString(),
      model: s.model ?? { name: 'digits', version: '1.0.0' },
      reasons: s.reasons ?? ['low_confidence'],
      priority: 5,
      prediction: { label: s.label, index, score: s.score, topk },
      input: { kind: 'image', content_type: 'image/png', sha256: sha256Hex(png), bytes: png.byteLength, width: 32, height: 32 },
      input_stats: { brightness: 0.5, contrast: 0.2 },
      source: 'dir',
      origin: `${s.id}.png`,
    },
    blob_b64: png.toString('base64'),
  });
}

/** Ingest samples through the real ingest path and check every one was stored. */
export async function seedSamples(ctx: FleetContext, specs: SeedSample[]): Promise<void> {
  const messages = await Promise.all(specs.map(sampleMessageOf));
  // Handed over in order, without awaiting in between: one batch, stored in the given order.
  const results = await Promise.all(specs.map((s, i) => ctx.ingest.accept(s.device, messages[i] as SampleMessage)));
  const bad = results.filter((r) => r.status !== 'stored');
  if (bad.length) throw new Error(`samples not stored: ${JSON.stringify(bad.map((b) => [b.sampleId, b.status]))}`);
}

/** fetch with a bearer token and JSON body. */
export async function call(
  base: string,
  method: string,
  path: string,
  o: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: Buffer } = {},
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const body = o.raw ?? (o.body !== undefined ? JSON.stringify(o.body) : undefined);
  const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? (JSON.parse(text) as unknown) : null;
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

/** A package directory as the tar `POST /v1/models` takes (what `edgeloop models push` streams). */
export async function tarOf(dir: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of await tarDirectory(dir)) parts.push(p);
  return Buffer.concat(parts);
}

/** Upload the package in `dir` (`POST /v1/models`, a tar body). */
export async function pushDir(base: string, token: string, dir: string): Promise<{ status: number; json: unknown; headers: Headers }> {
  return call(base, 'POST', '/v1/models', { token, raw: await tarOf(dir), headers: { 'content-type': 'application/x-tar' } });
}
