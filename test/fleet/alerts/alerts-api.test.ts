import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFleetCli } from '../../helpers/fleet-cli.js';
import type { AlertRecord, SampleMessage } from '../../../shared/schemas/index.js';
import { call, openTestFleet, sampleMessageOf, T0, type TestFleet } from '../http/context.js';

let f: TestFleet;
let base: string;

function alertOf(id: string, device: string, o: Partial<AlertRecord> = {}): AlertRecord {
  return {
    alert_id: `alr_${id}`,
    rule: 'haul-road',
    severity: 'critical',
    device_id: device,
    camera: 'pit-east',
    model: { name: 'det', version: '1.0.0' },
    ts: new Date(T0).toISOString(),
    label: 'person',
    score: 0.9,
    count: 1,
    detections: [{ label: 'person', score: 0.9, box: [1, 2, 30, 40], track: 3 }],
    frame: { width: 32, height: 32 },
    ...o,
  };
}

async function alertSample(id: string, device: string, o: Partial<AlertRecord> = {}): Promise<SampleMessage> {
  const m = await sampleMessageOf({ id: `smp_${id}`, device, label: 'person', score: 0.9, reasons: ['alert'] });
  return { ...m, meta: { ...m.meta, priority: 9, alert: alertOf(id, device, o) } };
}

const cli = (...argv: string[]): ReturnType<typeof runFleetCli> => runFleetCli([...argv, '--url', base, '--token', f.tokens.operator]);

beforeAll(async () => {
  f = await openTestFleet();
  base = await f.listen();
  await f.ctx.devices.register('gw-1', { tags: { site: 'pit-1' } });
  await f.ctx.devices.register('gw-2', { tags: { site: 'pit-2' } });
  const specs: Array<[string, string, Partial<AlertRecord>]> = [
    ['a1', 'gw-1', { ts: new Date(T0).toISOString() }],
    ['a2', 'gw-1', { ts: new Date(T0 + 60_000).toISOString(), severity: 'warning', rule: 'crowd', count: 4 }],
    ['a3', 'gw-2', { ts: new Date(T0 + 120_000).toISOString(), severity: 'info', rule: 'crowd' }],
  ];
  for (const [id, dev, o] of specs) expect((await f.ctx.ingest.accept(dev, await alertSample(id, dev, o))).status).toBe('stored');
});
afterAll(async () => {
  await f?.close();
});

const list = async (q = ''): Promise<Array<{ alert_id: string }>> => {
  const r = await call(base, 'GET', `/v1/alerts${q}`, { token: f.tokens.viewer });
  expect(r.status).toBe(200);
  return (r.json as { items: Array<{ alert_id: string }> }).items;
};

describe('alerts in the fleet', () => {
  it('are stored on ingest from the sample that carries them, once even when the sample is resent', async () => {
    expect((await f.ctx.ingest.accept('gw-1', await alertSample('a1', 'gw-1'))).status).toBe('duplicate');
    const r = await call(base, 'GET', '/v1/alerts/alr_a1', { token: f.tokens.viewer });
    expect(r.json).toMatchObject({ alert_id: 'alr_a1', device_id: 'gw-1', site: 'pit-1', camera: 'pit-east', rule: 'haul-road', severity: 'critical', sample_id: 'smp_a1', detections: [{ box: [1, 2, 30, 40] }], frame: { width: 32, height: 32 }, acknowledged: null, resolved: null });
    expect((await list()).map((a) => a.alert_id)).toEqual(['alr_a3', 'alr_a2', 'alr_a1']);
    // The frame is the sample's blob.
    expect((await fetch(`${base}/v1/samples/smp_a1/blob`, { headers: { authorization: `Bearer ${f.tokens.viewer}` } })).status).toBe(200);
  });

  it('an alert record naming another device is not believed (no alert row; the sample is still stored)', async () => {
    const m = await alertSample('spoof', 'gw-2');
    expect((await f.ctx.ingest.accept('gw-2', { ...m, meta: { ...m.meta, alert: { ...m.meta.alert!, device_id: 'gw-1' } } })).status).toBe('stored');
    expect((await call(base, 'GET', '/v1/alerts/alr_spoof', { token: f.tokens.viewer })).status).toBe(404);
  });

  it('filters by site, severity, rule, device and time range, and pages newest first', async () => {
    expect((await list('?site=pit-2')).map((a) => a.alert_id)).toEqual(['alr_a3']);
    expect((await list('?severity=warning')).map((a) => a.alert_id)).toEqual(['alr_a2']);
    expect((await list('?rule=crowd')).map((a) => a.alert_id)).toEqual(['alr_a3', 'alr_a2']);
    expect((await list('?device=gw-1')).map((a) => a.alert_id)).toEqual(['alr_a2', 'alr_a1']);
    expect((await list(`?from=${encodeURIComponent(new Date(T0 + 30_000).toISOString())}&to=${encodeURIComponent(new Date(T0 + 90_000).toISOString())}`)).map((a) => a.alert_id)).toEqual(['alr_a2']);
    const p1 = await call(base, 'GET', '/v1/alerts?limit=2', { token: f.tokens.viewer });
    const page = p1.json as { items: Array<{ alert_id: string }>; next_before: string };
    expect(page.items.map((a) => a.alert_id)).toEqual(['alr_a3', 'alr_a2']);
    expect((await list(`?limit=2&before=${encodeURIComponent(page.next_before)}`)).map((a) => a.alert_id)).toEqual(['alr_a1']);
    const bad = await call(base, 'GET', '/v1/alerts?severity=loud', { token: f.tokens.viewer });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toContain('severity');
  });

  it('acknowledge and resolve: operators only, who and when kept, idempotent, audited', async () => {
    expect((await call(base, 'POST', '/v1/alerts/alr_a1/ack', { token: f.tokens.viewer })).status).toBe(403);
    expect((await call(base, 'POST', '/v1/alerts/alr_a1/ack', { token: f.tokens.labeler })).status).toBe(403);
    expect((await call(base, 'POST', '/v1/alerts/alr_nope/ack', { token: f.tokens.operator })).json).toMatchObject({ error: { code: 'FLEET_ALERT_NOT_FOUND' } });
    const acked = await call(base, 'POST', '/v1/alerts/alr_a1/ack', { token: f.tokens.operator });
    expect(acked.json).toMatchObject({ acknowledged: { by: 'otto', at: new Date(T0).toISOString() }, resolved: null });
    f.clock.advance(5000);
    const again = await call(base, 'POST', '/v1/alerts/alr_a1/ack', { token: f.tokens.admin });
    expect(again.json).toMatchObject({ acknowledged: { by: 'otto' } });
    expect((await list('?state=acknowledged')).map((a) => a.alert_id)).toEqual(['alr_a1']);
    expect((await list('?state=open')).map((a) => a.alert_id)).toEqual(['alr_a3', 'alr_a2']);
    const resolved = await call(base, 'POST', '/v1/alerts/alr_a1/resolve', { token: f.tokens.admin });
    expect(resolved.json).toMatchObject({ acknowledged: { by: 'otto' }, resolved: { by: 'ada', at: new Date(T0 + 5000).toISOString() } });
    const audit = f.ctx.audit.list({}).items.filter((e) => e.action.startsWith('alert.'));
    expect(audit.map((e) => [e.action, e.actor, e.target])).toEqual([
      ['alert.resolve', 'ada', 'alr_a1'],
      ['alert.ack', 'otto', 'alr_a1'],
    ]);
    expect(f.ctx.alerts.countsByDevice().get('gw-1')).toEqual({ total: 2, open: 1 });
  });

  it('edgeloop alerts list | ack | resolve', async () => {
    const l = await cli('alerts', 'list', '--rule', 'crowd');
    expect([l.code, l.err]).toEqual([0, '']);
    expect(l.out).toMatch(/alr_a3\s+info\s+crowd\s+gw-2/);
    expect(l.out).toMatch(/alr_a2\s+warning\s+crowd\s+gw-1\s+pit-east\s+person\s+[\d.]+\s+4/);
    expect(l.out).not.toContain('alr_a1');
    const a = await cli('alerts', 'ack', 'alr_a2');
    expect([a.code, a.out]).toEqual([0, expect.stringMatching(/^alr_a2: acknowledged by otto/)]);
    const r = await cli('alerts', 'resolve', 'alr_a2', '--json');
    expect(JSON.parse(r.out)).toMatchObject({ alert_id: 'alr_a2', resolved: { by: 'otto' } });
    const missing = await cli('alerts', 'ack', 'alr_missing');
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain('FLEET_ALERT_NOT_FOUND');
  });
});
