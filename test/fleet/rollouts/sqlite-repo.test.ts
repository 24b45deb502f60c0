import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RolloutManager, memoryRolloutRepo, type RolloutRecord } from '../../../fleet/app/rollouts/manager.js';
import { initialState } from '../../../fleet/core/rollouts/machine.js';
import { sqliteRolloutRepo } from '../../../fleet/adapters/sqlite/rollout-repo.js';
import type { RolloutState } from '../../../fleet/core/rollouts/types.js';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { MIGRATIONS, migrate } from '../../../fleet/adapters/sqlite/migrations.js';
import type { Telemetry } from '../../../shared/schemas/index.js';
import { tempDir } from '../../helpers/packages.js';
import { CAND, EASY_GATES, Harness, PREV, devices, window } from './helpers.js';
import { runScenario, scenarioArb } from './scenario.js';

const record = (state: RolloutState): RolloutRecord => ({ state, selector: { site: 'pit-3' }, created_by: 'ana', created_at: 1 });

/** State as a plain value, with the device key order made visible (gate evaluation iterates it). */
const plain = (s: RolloutState): unknown => ({ ...(JSON.parse(JSON.stringify(s)) as object), device_order: Object.keys(s.devices) });

describe('sqlite rollout repository (state per device row)', () => {
  it('reloads exactly the state it was given, whichever steps were saved (property)', () => {
    const t = tempDir('edgeloop-rollout-repo-');
    try {
      let n = 0;
      fc.assert(
        fc.property(scenarioArb(60, 40), fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }), (scenario, skips) => {
          const db = openFleetDb({ path: join(t.dir, `p${n++}.db`) });
          try {
            const repo = sqliteRolloutRepo(db);
            const rec = record(initialState('ro-prop', CAND, scenario.plan));
            const log: unknown[] = [];
            let i = 0;
            const { final } = runScenario(scenario, (_before, r) => {
              rec.state = r.state;
              log.push(...r.decisions);
              // Save steps with decisions always (the manager does), others only sometimes:
              // a save must catch up on every change since the previous one.
              if (r.decisions.length || r.desired.length || !skips[i++ % skips.length]) repo.save(rec, r.decisions);
            });
            repo.save(rec, []);
            const again = sqliteRolloutRepo(db).all();
            expect(again).toHaveLength(1);
            expect(plain(again[0]!.state)).toEqual(plain(final));
            expect(again[0]!.state.decisions).toEqual(log);
            expect(again[0]!.selector).toEqual({ site: 'pit-3' });
          } finally {
            db.close();
          }
        }),
        { numRuns: 25 },
      );
    } finally {
      t.cleanup();
    }
  });

  it('writes only the device rows a step changed', () => {
    const t = tempDir('edgeloop-rollout-repo-');
    const db = openFleetDb({ path: join(t.dir, 'fleet.db') });
    try {
      const repo = sqliteRolloutRepo(db);
      const h = new Harness({ canary: { devices: { count: 2 }, bake_s: 60 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES });
      const rec = record(h.state);
      const save = (): number => {
        rec.state = h.state;
        const before = db.sqlite.prepare('SELECT total_changes() AS n').get() as { n: number };
        repo.save(rec, h.last?.decisions ?? []);
        return (db.sqlite.prepare('SELECT total_changes() AS n').get() as { n: number }).n - before.n;
      };
      h.start(devices(500));
      expect(save()).toBe(1 + 500 + h.last!.decisions.length);
      // One telemetry window: the rollout row and that one device's row.
      h.metrics('dev-007', PREV, window());
      expect(h.last!.decisions).toEqual([]);
      expect(save()).toBe(2);
      // Nothing changed on any device: only the rollout row.
      h.tick(1000);
      expect(save()).toBe(1);
    } finally {
      db.close();
      t.cleanup();
    }
  });

  it('migration 3 moves a schema-2 rollout (whole state in one row) into device rows, losing nothing', () => {
    const t = tempDir('edgeloop-rollout-repo-');
    try {
      const h = new Harness({ canary: { devices: { count: 2 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 60 }], gates: EASY_GATES });
      h.start(devices(30));
      h.healthyReports();
      h.tick(1000);
      expect(h.decisions.length).toBeGreaterThan(2);
      const path = join(t.dir, 'fleet.db');
      const raw = new Database(path);
      migrate(raw, MIGRATIONS.slice(0, 2));
      // What the schema-2 repository wrote: the whole state as JSON, decisions appended.
      raw.prepare(`INSERT INTO rollouts (id, model_name, model_version, status, selector, created_by, created_at, updated_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(h.state.id, CAND.name, CAND.version, h.state.status, '{"site":"pit-3"}', 'ana', 1, 2, JSON.stringify(h.state));
      for (const d of h.decisions) raw.prepare('INSERT INTO rollout_decisions (rollout_id, at, kind, decision) VALUES (?, ?, ?, ?)').run(h.state.id, d.at, d.kind, JSON.stringify(d));
      raw.close();
      const db = openFleetDb({ path });
      try {
        const [loaded] = sqliteRolloutRepo(db).all();
        expect(plain(loaded!.state)).toEqual(plain(h.state));
        const row = db.sqlite.prepare('SELECT state FROM rollouts').get() as { state: string };
        expect(Object.keys(JSON.parse(row.state) as object)).not.toContain('devices');
      } finally {
        db.close();
      }
    } finally {
      t.cleanup();
    }
  });
});

describe('rollout manager coalesces quiet steps', () => {
  const tel = (id: string, at: number, version = '1.0.0'): Telemetry => ({
    type: 'telemetry',
    v: 1,
    device_id: id,
    ts: new Date(at).toISOString(),
    window_s: 10,
    model: { name: 'digits', version },
    inference: { count: 50, errors: 0, rate_per_s: 5, latency_ms: { p50: 5, p95: 8, p99: 9 } },
    confidence_mean: 0.9,
    outliers: { count: 1, rate: 0.02, by_reason: {} },
    drift: { class_psi: null, brightness_psi: null, contrast_psi: null },
    queue: { depth: 0, bytes: 0, quota_bytes: 0, evicted_total: 0, oldest_age_s: null },
  });

  function setup(quietFlushMs: number) {
    const now = { t: Date.UTC(2026, 0, 1) };
    const repo = memoryRolloutRepo();
    let saves = 0;
    const counting = { all: repo.all, save: (r: RolloutRecord, d: Parameters<typeof repo.save>[1]) => (saves++, repo.save(r, d)) };
    const delivered: string[] = [];
    const m = new RolloutManager({
      repo: counting,
      backend: { name: 'test', deliver: async (_id, changes) => void delivered.push(...changes.map((c) => c.device_id)) },
      resolveTargets: () => devices(20),
      clock: { now: () => now.t },
      log: pino({ level: 'silent' }),
      quietFlushMs,
    });
    return { m, repo, now, saves: () => saves, delivered };
  }

  it('saves a step that decides or delivers at once, with the quiet changes before it', () => {
    const { m, repo, now, saves } = setup(1000);
    const id = m.create({ model: CAND, selector: {}, plan: { canary: { devices: { count: 2 }, bake_s: 60 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES }, actor: 'ana' }).state.id;
    expect(saves()).toBe(1);
    for (let i = 0; i < 10; i++) m.onTelemetry(tel(`dev-01${i}`, now.t));
    // Windows wait for the next tick (or other event) and are folded in one quiet step.
    expect(m.get(id).state.devices['dev-013']!.baseline.windows).toBe(1);
    m.tick();
    expect(m.get(id).state.devices['dev-013']!.baseline.windows).toBe(2);
    expect(saves()).toBe(1);
    expect(m.unsavedCount).toBe(1);
    // A command decides: saved now, and the stored state holds the ten quiet windows too.
    m.command(id, 'pause', 'ana');
    expect(saves()).toBe(2);
    expect(m.unsavedCount).toBe(0);
    const stored = repo.all()[0]!.state;
    expect(stored.status).toBe('paused');
    expect(stored.devices['dev-013']!.baseline.windows).toBe(m.get(id).state.devices['dev-013']!.baseline.windows);
    expect(stored.devices['dev-013']!.baseline.windows).toBe(2);
  });

  it('saves quiet steps on the tick after quietFlushMs, and on flush', () => {
    const { m, repo, now, saves } = setup(1000);
    const id = m.create({ model: CAND, selector: {}, plan: { canary: { devices: { count: 2 }, bake_s: 600 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES }, actor: 'ana' }).state.id;
    m.onTelemetry(tel('dev-005', now.t));
    m.tick();
    now.t += 500;
    m.tick();
    expect(saves()).toBe(1);
    now.t += 500;
    m.tick();
    expect(saves()).toBe(2);
    expect(repo.all()[0]!.state.devices['dev-005']!.baseline.windows).toBe(2);
    m.onTelemetry(tel('dev-006', now.t));
    // flush folds the waiting window and saves it.
    m.flush();
    expect(repo.all()[0]!.state.devices['dev-006']!.baseline.windows).toBe(2);
    expect(saves()).toBe(3);
    expect(repo.all()[0]!.state).toEqual(m.get(id).state);
  });

  it('with quietFlushMs 0 saves every step', () => {
    const { m, saves } = setup(0);
    m.create({ model: CAND, selector: {}, plan: { canary: { devices: { count: 2 }, bake_s: 600 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES }, actor: 'ana' });
    m.onTelemetry(tel('dev-005', Date.UTC(2026, 0, 1)));
    m.tick(); // the window's batch, then the tick
    expect(saves()).toBe(3);
  });

  it('folds telemetry before any other event, so each event sees the windows that came before it', () => {
    const { m, now } = setup(1000);
    const id = m.create({ model: CAND, selector: {}, plan: { canary: { devices: { count: 2 }, bake_s: 600 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES }, actor: 'ana' }).state.id;
    m.onTelemetry(tel('dev-004', now.t));
    m.onStatus({ type: 'device_status', v: 1, device_id: 'dev-004', ts: new Date(now.t).toISOString(), online: true, agent_version: 't', models: { active: PREV, previous: null, installed: [PREV] } });
    expect(m.get(id).state.devices['dev-004']!.baseline.windows).toBe(2);
    // A full buffer is folded without waiting for the tick.
    for (let i = 0; i < 500; i++) m.onTelemetry(tel('dev-009', now.t));
    expect(m.get(id).state.devices['dev-009']!.baseline.windows).toBe(501);
  });
});
