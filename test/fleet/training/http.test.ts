import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFleetCli } from '../../helpers/fleet-cli.js';
import { call, openTestFleet, T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';
import { DIGITS, fieldSamples, loopOn, PrototypeTrainer } from './fixtures.js';

let f: TestFleet;
let base: string;

const cli = (...argv: string[]): ReturnType<typeof runFleetCli> => runFleetCli([...argv, '--url', base, '--token', f.tokens.operator]);

beforeAll(async () => {
  f = await openTestFleet();
  base = await f.listen();
}, 60_000);
afterAll(async () => {
  await f.ctx.training?.stop();
  await f.close();
});

describe('training over the HTTP API, the CLI and the console', () => {
  it('answers FLEET_TRAINING_NOT_CONFIGURED while no loop runs; runs and lineage still read', async () => {
    const r = await call(base, 'POST', '/v1/training/runs', { token: f.tokens.admin, body: {} });
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ error: { code: 'FLEET_TRAINING_NOT_CONFIGURED', message: expect.stringContaining('edgeloop serve --training FILE') } });
    expect((await call(base, 'GET', '/v1/training/runs', { token: f.tokens.viewer })).json).toEqual({ items: [] });
  });

  it('trains on request (operator), refuses viewers and labelers, follows progress, stores the report, and shows the lineage chain', { timeout: 180_000 }, async () => {
    f.ctx.training = loopOn(f, {
      dir: 'training',
      devices: f.ctx.devices,
      trainers: { prototype: new PrototypeTrainer() },
      models: [
        {
          name: 'digits',
          labels: DIGITS,
          trainer: 'prototype',
          base: [{ source: 'mnist', offset: 0, count: 200, split: 'train' }, { source: 'mnist', offset: 200, count: 100, split: 'clean_holdout' }],
          gate: { require_field_holdout: false },
        },
      ],
    });
    await fieldSamples(f.ctx, { offset: 4000, count: 40, devices: ['ridge-1-a'], drift: { dim: 0.4 }, labeler: 'lena', at: T0 });
    for (const role of ['viewer', 'labeler'] as const) {
      const r = await call(base, 'POST', '/v1/training/runs', { token: f.tokens[role], body: {} });
      expect(r.status).toBe(403);
    }
    const started = await call(base, 'POST', '/v1/training/runs', { token: f.tokens.operator, body: { note: 'from the test' } });
    expect(started.status).toBe(202);
    const run = (started.json as { run: { id: string; status: string } }).run;
    expect(run.status).toBe('running');
    const again = await call(base, 'POST', '/v1/training/runs', { token: f.tokens.admin, body: {} });
    expect(again.status).toBe(409);
    expect(again.json).toMatchObject({ error: { code: 'FLEET_TRAINING_IN_PROGRESS' } });
    await f.ctx.training.settled();
    const done = (await call(base, 'GET', `/v1/training/runs/${run.id}`, { token: f.tokens.viewer })).json as { run: { status: string; result: unknown; trigger: { reason: string } }; progress: Array<{ phase: string }> };
    // No production model: only the field-holdout presence is judged, and it is not required here.
    expect(done.run).toMatchObject({ status: 'accepted', result: { name: 'digits', version: '1.0.0' }, trigger: { reason: 'manual: requested by otto (from the test)' } });
    expect(done.progress.map((p) => p.phase)).toContain('evaluate');
    const report = (await call(base, 'GET', `/v1/training/runs/${run.id}/report`, { token: f.tokens.viewer })).json as { candidate: { clean: { confusion: number[][]; count: number } } };
    expect(report.candidate.clean.count).toBe(100);
    expect(report.candidate.clean.confusion).toHaveLength(10);
    expect((await call(base, 'GET', '/v1/training/triggers', { token: f.tokens.viewer })).json).toMatchObject({ items: [{ kind: 'manual', run_id: run.id }] });
    expect((await call(base, 'GET', '/v1/training/models', { token: f.tokens.viewer })).json).toMatchObject({ items: [{ name: 'digits', trainer: 'prototype', auto_promote: false, running: null }] });

    const chain = (await call(base, 'GET', '/v1/models/digits/1.0.0/lineage/full', { token: f.tokens.viewer })).json as { steps: Array<{ run: { id: string }; dataset: { devices: Record<string, number>; labelers: Record<string, number>; entries: unknown[] } }> };
    expect(chain.steps[0]?.run.id).toBe(run.id);
    expect(chain.steps[0]?.dataset.devices).toEqual({ 'ridge-1-a': 40 });
    expect(chain.steps[0]?.dataset.labelers).toEqual({ lena: 40 });
    expect(chain.steps[0]?.dataset.entries).toHaveLength(40);
    const slim = (await call(base, 'GET', '/v1/models/digits/1.0.0/lineage/full?entries=false', { token: f.tokens.viewer })).json as typeof chain;
    expect(slim.steps[0]?.dataset.entries).toEqual([]);

    const openapi = (await call(base, 'GET', '/v1/openapi.json')).json as { paths: Record<string, unknown> };
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(['/v1/training/runs', '/v1/training/runs/{id}', '/v1/training/runs/{id}/report', '/v1/training/triggers', '/v1/models/{name}/{version}/lineage/full']));

    // The console's model page renders the same chain: run, dataset, devices, labelers, samples.
    const login = await fetch(`${base}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: f.tokens.viewer, next: '/console/models' }) });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
    const page = await (await fetch(`${base}/console/models/digits/1.0.0`, { headers: { cookie } })).text();
    expect(page).toContain('id="provenance"');
    expect(page).toContain(`data-run="${run.id}"`);
    expect(page).toContain('manual: requested by otto (from the test)');
    expect(page).toMatch(/<span class="tag">ridge-1-a 40<\/span>/);
    expect(page).toMatch(/<span class="tag">lena 40<\/span>/);
    expect(page).toContain('data-sample="field-4000"');
    const list = await (await fetch(`${base}/console/models`, { headers: { cookie } })).text();
    expect(list).toContain('id="training-runs"');
    expect(list).toContain(`<tr data-run="${run.id}">`);
    expect(list).toContain('<b>manual</b> digits: manual: requested by otto (from the test)');
  });

  it('edgeloop train waits with progress and prints the verdict; edgeloop models lineage prints the chain', { timeout: 180_000 }, async () => {
    f.clock.advance(3_600_000);
    const t = await cli('train', '--note', 'cli');
    expect(t.code).toBe(0);
    expect(t.err).toMatch(/\[train\]/);
    expect(t.err).toMatch(/\[evaluate\]/);
    expect(t.out).toMatch(/^run run_\S+: (accepted|rejected) digits@1\.1\.0 \(parent digits@1\.0\.0\)/);
    expect(t.out).toMatch(/(pass|FAIL) +clean holdout accuracy/);
    const help = await cli('train', '--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: edgeloop train \[--model NAME\]/);
    expect((await cli('train', 'extra')).code).toBe(2);
    const json = await cli('train', '--json', '--trainer', 'missing');
    expect(json.code).toBe(1);
    expect(json.err).toMatch(/^FLEET_TRAINER_UNKNOWN: /);
    const l = await cli('models', 'lineage', 'digits@1.1.0');
    expect(l.code).toBe(0);
    expect(l.out).toMatch(/^digits@1\.1\.0 (registered|rejected)/);
    expect(l.out).toContain('<- digits@1.0.0 registered');
    expect(l.out).toContain('devices  ridge-1-a 40');
    expect(l.out).toContain('labelers lena 40');
    expect(l.out).toContain('trigger  manual: requested by otto (cli)');
    const withEntries = await cli('models', 'lineage', 'digits@1.1.0', '--entries');
    expect(withEntries.out).toMatch(/field-4000 \d (train|field_holdout) from ridge-1-a, labeled by lena at /);
  });
});
