import { join } from 'node:path';
import { openFsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import type { FsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import type { ArtifactStore } from '../../../fleet/app/artifacts.js';
import { DeviceRegistry } from '../../../fleet/app/devices/registry.js';
import { Datasets } from '../../../fleet/app/labels/datasets.js';
import { Labels } from '../../../fleet/app/labels/labels.js';
import { SampleIngest } from '../../../fleet/app/samples/ingest.js';
import type { SampleIngestOptions } from '../../../fleet/app/samples/ingest.js';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteDatasetsRepo } from '../../../fleet/adapters/sqlite/datasets-repo.js';
import { sqliteDevicesRepo } from '../../../fleet/adapters/sqlite/devices-repo.js';
import { sqliteSamplesRepo } from '../../../fleet/adapters/sqlite/samples-repo.js';
import type { FleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sha256Hex } from '../../../shared/ids.js';
import { sampleMessage } from '../../../shared/schemas/index.js';
import type { OutlierReason, SampleMessage, SampleMeta } from '../../../shared/schemas/index.js';
import { encodeSample } from '../../../shared/wire/chunking.js';
import { tempDir } from '../../helpers/packages.js';

export const T0 = Date.parse('2025-03-01T10:00:00Z');

/** Deterministic pseudo-random bytes: the same generator the uplink tests use. */
import { bytes } from '../../uplink/fixtures/samples.js';

export { bytes };

export interface SampleSpec {
  id: string;
  device?: string;
  reasons?: OutlierReason[];
  model?: string;
  version?: string;
  label?: string;
  score?: number;
  capturedAt?: number;
  blobBytes?: number;
  seed?: number;
}

export function makeSample(s: SampleSpec): { meta: SampleMeta; blob: Buffer } {
  let seed = s.seed ?? 7;
  for (let i = 0; i < s.id.length; i++) seed = (seed * 31 + s.id.charCodeAt(i)) >>> 0;
  const blob = bytes(s.blobBytes ?? 600, seed);
  const label = s.label ?? '7';
  const score = s.score ?? 0.41;
  const meta: SampleMeta = {
    sample_id: s.id,
    device_id: s.device ?? 'cam-1',
    captured_at: new Date(s.capturedAt ?? T0).toISOString(),
    model: { name: s.model ?? 'digits', version: s.version ?? '1.0.0' },
    reasons: s.reasons ?? ['low_confidence'],
    priority: 5,
    prediction: { label, index: 7, score, topk: [{ label, index: 7, score }] },
    input: { kind: 'image', content_type: 'image/png', sha256: sha256Hex(blob), bytes: blob.byteLength, width: 28, height: 28 },
    input_stats: { brightness: 0.4, contrast: 0.2 },
    source: 'dir',
    origin: `${s.id}.png`,
  };
  return { meta, blob };
}

/** The sample as the device's uplink sends it: one message, or chunks when `maxMessageBytes` is small. */
export function messagesOf(sample: { meta: SampleMeta; blob: Buffer }, maxMessageBytes?: number): SampleMessage[] {
  const topic = `edgeloop/v1/devices/${sample.meta.device_id}/samples`;
  return encodeSample(sample.meta, sample.blob, maxMessageBytes === undefined ? { topic } : { topic, maxMessageBytes }).map((b) => sampleMessage.parse(JSON.parse(b.toString('utf8'))));
}

export function messageOf(s: SampleSpec): SampleMessage {
  return messagesOf(makeSample(s))[0] as SampleMessage;
}

export interface Parts {
  dir: string;
  db: FleetDb;
  artifacts: FsArtifactStore;
  ingest: SampleIngest;
  labels: Labels;
  datasets: Datasets;
  devices: DeviceRegistry;
  clock: { now: () => number; set: (ms: number) => void; advance: (ms: number) => void };
  cleanup: () => void;
}

/** A fleet database, artifact store and the sample/label/dataset services over its SQLite repositories, in a temp dir. */
export async function openParts(o: { ingest?: Partial<SampleIngestOptions>; artifacts?: (real: FsArtifactStore) => ArtifactStore } = {}): Promise<Parts> {
  const t = tempDir('edgeloop-samples-');
  let now = T0;
  const clock = { now: () => now, set: (ms: number) => void (now = ms), advance: (ms: number) => void (now += ms) };
  const db = openFleetDb({ path: join(t.dir, 'fleet.db'), clock });
  const artifacts = await openFsArtifactStore({ dir: join(t.dir, 'artifacts') });
  const store = o.artifacts ? o.artifacts(artifacts) : artifacts;
  const samples = sqliteSamplesRepo(db);
  const devices = sqliteDevicesRepo(db);
  const ingest = new SampleIngest({ samples, devices, artifacts: store, clock, ...o.ingest });
  return {
    dir: t.dir,
    db,
    artifacts,
    ingest,
    labels: new Labels({ samples, clock }),
    datasets: new Datasets({ repo: sqliteDatasetsRepo(db), samples, artifacts, clock }),
    devices: new DeviceRegistry({ repo: devices, clock, scrypt: { N: 1024, r: 8, p: 1 } }),
    clock,
    cleanup: () => {
      db.close();
      t.cleanup();
    },
  };
}

/** Ingest samples, each as one message, and check every one was stored. */
export async function ingestAll(p: Parts, specs: SampleSpec[]): Promise<void> {
  const results = await Promise.all(specs.map((s) => p.ingest.accept(s.device ?? 'cam-1', messageOf(s))));
  const bad = results.filter((r) => r.status !== 'stored');
  if (bad.length) throw new Error(`not stored: ${JSON.stringify(bad.map((b) => b.status))}`);
}
