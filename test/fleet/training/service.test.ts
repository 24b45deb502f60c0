import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../fleet/edges/cli/main.js';
import { createFleetHttp } from '../../../fleet/edges/server.js';
import { startFleetService, type FleetService } from '../../../fleet/boot/service.js';
import { tempDir } from '../../helpers/packages.js';
import { DIGITS, mnistSource, PrototypeTrainer } from './fixtures.js';

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;

beforeAll(async () => {
  delete process.env.EDGELOOP_TOKEN;
  tmp = tempDir('edgeloop-train-svc-');
  svc = await startFleetService({
    dataDir: join(tmp.dir, 'fleet'),
    httpPort: 0,
    mqttPort: 0,
    log: pino({ level: 'silent' }),
    http: createFleetHttp,
    training: {
      trainers: { prototype: new PrototypeTrainer() },
      base: mnistSource,
      models: [{ name: 'digits', labels: DIGITS, trainer: 'prototype', base: [{ source: 'mnist', offset: 0, count: 100, split: 'train' }, { source: 'mnist', offset: 100, count: 50, split: 'clean_holdout' }], gate: { require_field_holdout: false } }],
      tickMs: 60_000,
    },
  });
}, 60_000);
afterAll(async () => {
  await svc.stop();
  tmp.cleanup();
});

describe('the fleet service with a learning loop', () => {
  it('edgeloop train --json against a served fleet trains, signs and registers the candidate with lineage', { timeout: 120_000 }, async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['train', '--json', '--data', join(tmp.dir, 'fleet')], { out: (l) => out.push(l), err: (l) => err.push(l) });
    expect(err.join('\n')).toBe('');
    expect(code).toBe(0);
    const run = JSON.parse(out.join('\n')) as { status: string; result: { name: string; version: string }; id: string; dataset_version: string };
    expect(run).toMatchObject({ status: 'accepted', result: { name: 'digits', version: '1.0.0' } });
    const v = svc.ctx.registry.get('digits', '1.0.0');
    expect(v.lineage).toMatchObject({ training_run: run.id, dataset_version: run.dataset_version });
    expect(v.key_id).toBeTruthy();
  });
});
