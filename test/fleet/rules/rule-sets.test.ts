import { createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Detection, SampleMessage } from '../../../shared/schemas/index.js';
import { signatureProblem } from '../../../shared/signing.js';
import pino from 'pino';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteRuleSetsRepo } from '../../../fleet/adapters/sqlite/rule-sets-repo.js';
import { RuleSets } from '../../../fleet/app/rules/rule-sets.js';
import { captureLogger } from '../../helpers/agent.js';
import { runFleetCli } from '../../helpers/fleet-cli.js';
import { fleetKeys } from '../../helpers/packages.js';
import { call, openTestFleet, sampleMessageOf, T0, type TestFleet } from '../http/context.js';

let f: TestFleet;
let base: string;

/** A detector's sample from a camera, as an agent sends it (32x32 frame, boxes in its pixels). */
async function cameraSample(id: string, device: string, camera: string, at: number, detections: Detection[]): Promise<SampleMessage> {
  const m = await sampleMessageOf({ id, device, label: detections[0]?.label ?? 'none', score: detections[0]?.score ?? 0, capturedAt: at, model: { name: 'det', version: '1.0.0' }, labels: ['person', 'truck'] });
  return { ...m, meta: { ...m.meta, source: 'camera', origin: camera, detections } };
}

const IN_ZONE: Detection = { label: 'person', score: 0.9, box: [2, 20, 10, 30] };
const OUT_OF_ZONE: Detection = { label: 'person', score: 0.8, box: [20, 2, 28, 10] };

/** The bottom half of the frame is the haul road; two people anywhere are a crowd. */
const RULES = {
  rules: [
    { id: 'haul-road', model: 'det', camera: 'pit-east', labels: ['person'], min_score: 0.5, zone: { polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]] }, cooldown_s: 60, severity: 'critical', actions: ['siren'] },
    { id: 'crowd', model: 'det', labels: ['person'], min_count: 2, cooldown_s: 0 },
  ],
  actions: { siren: { kind: 'mqtt', url: 'mqtt://127.0.0.1:1883', topic: 'site/alarms/{{rule}}' } },
};

const cli = (token: string, ...argv: string[]): ReturnType<typeof runFleetCli> => runFleetCli([...argv, '--url', base, '--token', token]);

beforeAll(async () => {
  f = await openTestFleet();
  base = await f.listen();
  await f.ctx.devices.register('gw-1', { tags: { site: 'pit-1', camera: 'haul' } });
  await f.ctx.devices.register('gw-2', { tags: { site: 'pit-1' } });
  await f.ctx.devices.register('gw-3', { tags: { site: 'pit-2' } });
  const samples: Array<[string, SampleMessage]> = [
    // gw-1, pit-east: a person steps on the road (fires), stays (one alert, not one per frame),
    // a second person appears off the road (crowd), the first comes back after two minutes (fires again).
    ['gw-1', await cameraSample('smp_s1', 'gw-1', 'pit-east', T0, [IN_ZONE])],
    ['gw-1', await cameraSample('smp_s2', 'gw-1', 'pit-east', T0 + 10_000, [IN_ZONE])],
    ['gw-1', await cameraSample('smp_s3', 'gw-1', 'pit-east', T0 + 20_000, [IN_ZONE, OUT_OF_ZONE])],
    ['gw-1', await cameraSample('smp_s4', 'gw-1', 'pit-east', T0 + 120_000, [IN_ZONE])],
    // Another camera: the zone rule is for pit-east only.
    ['gw-2', await cameraSample('smp_w1', 'gw-2', 'pit-west', T0 + 5_000, [IN_ZONE])],
    // Another model: no rule reads it.
    ['gw-2', await sampleMessageOf({ id: 'smp_c1', device: 'gw-2', label: 'person', score: 0.99, capturedAt: T0 + 6_000 })],
  ];
  // Stored out of capture order: the replay sorts by capture time per device.
  for (const [dev, m] of samples.reverse()) expect((await f.ctx.ingest.accept(dev, m)).status).toBe('stored');
  await f.ctx.ingest.flush();
});
afterAll(async () => {
  await f?.close();
});

describe('rule sets in the fleet', () => {
  it('push refuses an invalid rule set naming every bad key, and stores nothing', async () => {
    const bad = { rules: [{ id: 'x', model: 'det', min_score: 2, zone: { polygon: [[0, 0]] }, actions: ['nope'], colour: 'red' }], actions: {} };
    const r = await call(base, 'POST', '/v1/rule-sets', { token: f.tokens.operator, body: { name: 'bad', rules: bad } });
    expect(r.status).toBe(422);
    const e = (r.json as { error: { code: string; message: string } }).error;
    expect(e.code).toBe('FLEET_RULE_SET_INVALID');
    for (const key of ['rules.0.min_score', 'rules.0.zone.polygon', 'rules.0.actions.0', 'colour']) expect(e.message).toContain(key);
    expect(f.ctx.ruleSets.list()).toEqual([]);
  });

  it('push stores numbered versions signed with the fleet key; a viewer may not push', async () => {
    expect((await call(base, 'POST', '/v1/rule-sets', { token: f.tokens.viewer, body: { name: 'haul', rules: RULES } })).status).toBe(403);
    const file = join(f.dir, 'haul.json');
    writeFileSync(file, JSON.stringify(RULES));
    const p1 = await cli(f.tokens.operator, 'rules', 'push', file, '--name', 'haul', '--json');
    expect(p1.code, p1.err).toBe(0);
    const doc = JSON.parse(p1.out) as Record<string, unknown>;
    expect(doc).toMatchObject({ name: 'haul', version: 1, rules: RULES });
    expect(signatureProblem(doc, createPublicKey(f.ctx.publicKeyPem), 'rule set')).toBeNull();
    // Changed after signing: the signature says so.
    expect(signatureProblem({ ...doc, rules: { ...RULES, rules: [] } }, createPublicKey(f.ctx.publicKeyPem), 'rule set')).toContain('changed after signing');
    const p2 = await cli(f.tokens.operator, 'rules', 'push', file, '--name', 'haul');
    expect(p2.out).toContain('stored haul@2');
    const list = await cli(f.tokens.viewer, 'rules', 'list');
    expect(list.out).toMatch(/haul@1\s+2\s/);
    expect(list.out).toMatch(/haul@2\s+2\s/);
    expect(f.ctx.audit.list({}).items.filter((e) => e.action === 'rules.push').map((e) => e.target)).toEqual(['haul@2', 'haul@1']);
  });

  it('push and test refuse a rule set too large to travel inline to a device (the replay of one stays bounded)', async () => {
    const labels = Array.from({ length: 2000 }, (_, i) => `label-${i}-${'x'.repeat(50)}`);
    const r = await call(base, 'POST', '/v1/rule-sets', { token: f.tokens.operator, body: { name: 'huge', rules: { rules: [{ id: 'all', model: 'det', labels }] } } });
    expect(r.status).toBe(413);
    expect((r.json as { error: { code: string } }).error.code).toBe('FLEET_RULE_SET_TOO_LARGE');
    const t = await call(base, 'POST', '/v1/rule-sets/test', { token: f.tokens.viewer, body: { rules: { rules: [{ id: 'all', model: 'det', labels }] } } });
    expect([t.status, (t.json as { error: { code: string } }).error.code]).toEqual([413, 'FLEET_RULE_SET_TOO_LARGE']);
  });

  it('deploy sends the signed set to the devices the selector picks, each with a newer revision', async () => {
    const d = await cli(f.tokens.operator, 'rules', 'deploy', 'haul@1', '--selector', 'site=pit-1', '--json');
    expect(d.code, d.err).toBe(0);
    expect(JSON.parse(d.out)).toMatchObject({ rule_set: { name: 'haul', version: 1 }, devices: ['gw-1', 'gw-2'] });
    expect(f.ruleDeliveries.map((m) => [m.device_id, m.rule_set?.version])).toEqual([
      ['gw-1', 1],
      ['gw-2', 1],
    ]);
    const first = f.ruleDeliveries[0]!.revision;
    await cli(f.tokens.operator, 'rules', 'deploy', 'haul@2', '--selector', 'camera=haul');
    const last = f.ruleDeliveries.at(-1)!;
    expect([last.device_id, last.rule_set?.version]).toEqual(['gw-1', 2]);
    expect(last.revision).toBeGreaterThan(first);
    expect(f.ctx.ruleSets.assignmentOf('gw-1')).toMatchObject({ name: 'haul', version: 2, revision: last.revision });
    expect(f.ctx.ruleSets.assignmentOf('gw-3')).toBeNull();
    // A labeler may not deploy; an unknown version is refused.
    expect((await call(base, 'POST', '/v1/rule-sets/haul/1/deploy', { token: f.tokens.labeler, body: { selector: { site: 'pit-1' } } })).status).toBe(403);
    expect((await call(base, 'POST', '/v1/rule-sets/haul/9/deploy', { token: f.tokens.operator, body: { selector: { site: 'pit-1' } } })).status).toBe(404);
  });

  it('a deployment stands for its selector: a device registered later gets the newest one its tags match, and none when nothing matches', async () => {
    const register = async (name: string, tags: Record<string, string>): Promise<void> => {
      const r = await call(base, 'POST', '/v1/devices', { token: f.tokens.admin, body: { name, tags } });
      expect(r.status, JSON.stringify(r.json)).toBe(201);
    };
    // A site with no device yet: nothing is sent today, the deployment stands.
    const ahead = await cli(f.tokens.operator, 'rules', 'deploy', 'haul@1', '--selector', 'site=pit-7');
    expect([ahead.code, ahead.out]).toEqual([0, 'haul@1: no device has these tags yet; devices registered with them will get it']);
    const before = f.ruleDeliveries.length;
    await register('gw-7', { site: 'pit-7' });
    // Only `site=pit-1` (haul@1) matches; `camera=haul` (haul@2, newer) does not.
    await register('gw-4', { site: 'pit-1' });
    // Both match: the newer deployment wins.
    await register('gw-5', { site: 'pit-1', camera: 'haul' });
    // Nothing matches: nothing is sent.
    await register('gw-6', { site: 'pit-9' });
    expect(f.ruleDeliveries.slice(before).map((m) => [m.device_id, m.rule_set?.name, m.rule_set?.version])).toEqual([
      ['gw-7', 'haul', 1],
      ['gw-4', 'haul', 1],
      ['gw-5', 'haul', 2],
    ]);
    expect(f.ctx.ruleSets.assignmentOf('gw-5')).toMatchObject({ name: 'haul', version: 2, assigned_by: 'fleet' });
    expect(f.ctx.ruleSets.assignmentOf('gw-6')).toBeNull();
    expect(f.logs.find((l) => l.msg === 'rule set sent to a new device its deployment selects' && l['device_id'] === 'gw-4')).toMatchObject({ rule_set: 'haul@1' });
    for (const id of ['gw-4', 'gw-5', 'gw-6', 'gw-7']) f.ctx.devices.remove(id);
  });

  it('test replays the set over stored samples in capture order per device and camera, through the agent engine', async () => {
    const file = join(f.dir, 'haul.json');
    const r = await cli(f.tokens.viewer, 'rules', 'test', file, '--json');
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as { samples: number; firings: Array<{ rule: string; sample_id: string; device_id: string; camera: string; count: number }>; per_rule: Record<string, number> };
    expect(report.samples).toBe(6);
    expect(report.firings.map((x) => [x.rule, x.sample_id])).toEqual([
      ['haul-road', 'smp_s1'],
      ['crowd', 'smp_s3'],
      ['haul-road', 'smp_s4'],
    ]);
    expect(report.firings[1]).toMatchObject({ device_id: 'gw-1', camera: 'pit-east', count: 2 });
    expect(report.per_rule).toEqual({ 'haul-road': 2, crowd: 1 });
    // A sample query: from 15 s on, the person already on the road is new to the replay.
    const since = new Date(T0 + 15_000).toISOString();
    const q = await cli(f.tokens.viewer, 'rules', 'test', file, '--samples', `device=gw-1,since=${since}`, '--json');
    const r2 = JSON.parse(q.out) as typeof report;
    expect(r2.samples).toBe(2);
    expect(r2.firings.map((x) => [x.rule, x.sample_id])).toEqual([
      ['haul-road', 'smp_s3'],
      ['crowd', 'smp_s3'],
      ['haul-road', 'smp_s4'],
    ]);
    // The text form: each firing and the count per rule.
    const text = await cli(f.tokens.viewer, 'rules', 'test', file);
    expect(text.out).toContain('6 sample(s) replayed; 3 alert(s) would have fired');
    expect(text.out).toMatch(/haul-road\s+2/);
    // A bad key in the query is a usage error naming it.
    const bad = await cli(f.tokens.viewer, 'rules', 'test', file, '--samples', 'colour=red');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('unknown key colour');
  });

  it('withdraw sends rule_set null with a newer revision to the selected devices; the device page and list say so', async () => {
    const before = f.ctx.ruleSets.assignmentOf('gw-1')!.revision;
    const w = await cli(f.tokens.operator, 'rules', 'withdraw', '--selector', 'camera=haul');
    expect(w.code, w.err).toBe(0);
    expect(w.out).toContain('withdrawn from 1 device(s): gw-1');
    const last = f.ruleDeliveries.at(-1)!;
    expect([last.device_id, last.rule_set]).toEqual(['gw-1', null]);
    expect(last.revision).toBeGreaterThan(before);
    expect(f.ctx.ruleSets.assignmentOf('gw-1')).toMatchObject({ name: null, version: null, assigned_by: 'otto' });
    expect(f.ctx.audit.list({}).items.find((e) => e.action === 'rules.withdraw')).toMatchObject({ actor: 'otto', target: 'camera=haul' });
    // A viewer may not.
    expect((await call(base, 'POST', '/v1/rule-sets/withdraw', { token: f.tokens.viewer, body: { selector: { camera: 'haul' } } })).status).toBe(403);
  });

  it('deploy is FLEET_DELIVERY_FAILED (logged) when the broker refuses the messages', async () => {
    const db = openFleetDb({ path: join(f.dir, 'delivery.db'), clock: f.clock });
    const { log, lines } = captureLogger('info');
    try {
      const rs = new RuleSets({ repo: sqliteRuleSetsRepo(db), devices: f.ctx.devices, samples: f.ctx.ingest, clock: f.clock, audit: f.ctx.audit, log, signingKey: fleetKeys(), delivery: () => ({ deliver: () => Promise.reject(new Error('broker refused the publish')) }) });
      rs.push('haul', RULES, { actor: 'otto' });
      await expect(rs.deploy('haul', 1, { site: 'pit-2' }, { actor: 'otto' })).rejects.toMatchObject({ code: 'FLEET_DELIVERY_FAILED', message: expect.stringContaining('broker refused the publish') as unknown });
      expect(lines.some((l) => l['msg'] === 'rule set not delivered' && l['rule_set'] === 'haul@1')).toBe(true);
      // Not audited as deployed.
      expect(f.ctx.audit.list({}).items.some((e) => e.action === 'rules.deploy' && e.details?.['selector'] !== undefined && (e.details['selector'] as Record<string, string>)['site'] === 'pit-2')).toBe(false);
      // Without a delivery channel at all (the broker client not up yet).
      const none = new RuleSets({ repo: sqliteRuleSetsRepo(db), devices: f.ctx.devices, samples: f.ctx.ingest, clock: f.clock, audit: f.ctx.audit, log: pino({ level: 'silent' }), signingKey: fleetKeys(), delivery: () => null });
      await expect(none.deploy('haul', 1, { site: 'pit-2' }, { actor: 'otto' })).rejects.toMatchObject({ code: 'FLEET_DELIVERY_FAILED' });
    } finally {
      db.close();
    }
  });

  it('test refuses an invalid rule set with every bad key named', async () => {
    const r = await call(base, 'POST', '/v1/rule-sets/test', { token: f.tokens.viewer, body: { rules: { rules: [{ id: 'x', model: 'det', hold_s: -1 }], extra: 1 } } });
    expect(r.status).toBe(422);
    const msg = (r.json as { error: { message: string } }).error.message;
    expect(msg).toContain('rules.0.hold_s');
    expect(msg).toContain('extra');
  });
});
