import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { LearningLoop } from '../../../fleet/app/training/loop.js';
import type { LoopModelConfigInput } from '../../../fleet/app/training/config.js';
import type { Trainer, TrainRequest, TrainResult } from '../../../fleet/app/training/trainer.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { fleetKeys, imagePackage, tempDir } from '../../helpers/packages.js';
import { chartGeometry, outside, overlaps } from '../../helpers/svg-geometry.js';
import { openTestFleet } from '../http/context.js';
import type { TestFleet } from '../http/context.js';
import { DIGITS, fieldSamples, loopOn, PrototypeTrainer } from '../training/fixtures.js';

const skipReason = chromiumSkipReason();
if (skipReason) console.info(`[console] skipping the headless Chromium tests: ${skipReason}`);

/**
 * The prototype trainer behind a door: it reports three epochs with their loss, as the local
 * trainer does, then waits until the test opens the door, so the page can be seen mid-run.
 */
class PacedTrainer implements Trainer {
  readonly name = 'paced';
  private readonly inner = new PrototypeTrainer({ name: 'paced' });
  private open: (() => void) | null = null;
  private door: Promise<void> = Promise.resolve();
  reported = 0;
  hold(): void {
    this.door = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
  }
  async train(req: TrainRequest): Promise<TrainResult> {
    for (let epoch = 1; epoch <= 3; epoch++) {
      const loss = 1 / (epoch + 1);
      req.onProgress?.({ message: `epoch ${epoch}/3: loss ${loss.toFixed(4)}`, fraction: epoch / 4, metrics: { epoch, loss, accuracy: 0.5 + epoch / 10 } });
      this.reported = epoch;
    }
    await this.door;
    return this.inner.train(req);
  }
}

const config: LoopModelConfigInput = {
  name: 'digits',
  labels: DIGITS,
  trainer: 'paced',
  seed: 3,
  base: [
    { source: 'mnist', offset: 0, count: 60, split: 'train' },
    { source: 'mnist', offset: 60, count: 40, split: 'clean_holdout' },
  ],
  holdout: { kind: 'hash', fraction: 0.4, salt: 'console' },
  // Generous limits: these tests read the gate's table, they do not judge the prototype model.
  gate: { field_gain_min_pts: -100, clean_drop_max_pts: 100, class_drop_max_pts: 100, class_min_samples: 2, latency_ratio_max: 1000, latency_slack_ms: 1000, require_field_holdout: false },
  auto_promote: { selector: { site: 'pit-3' }, plan: { canary: { devices: { count: 1 }, bake_s: 60 } } },
};

describe.skipIf(skipReason !== null)('training page, in headless Chromium', () => {
  let f: TestFleet;
  let base: string;
  let browser: Browser;
  let loop: LearningLoop;
  const trainer = new PacedTrainer();
  const pkgs = tempDir('edgeloop-console-training-');

  beforeAll(async () => {
    f = await openTestFleet();
    base = await f.listen();
    for (const id of ['pit-3-a', 'pit-3-b']) await f.ctx.devices.register(id, { tags: { site: 'pit-3' } });
    loop = loopOn(f, { dir: 'training', devices: f.ctx.devices, trainers: { paced: trainer }, models: [config], signKeyPem: fleetKeys().privateKeyPem });
    (f.ctx as { training?: LearningLoop }).training = loop;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await loop?.stop();
    await f?.close();
    pkgs.cleanup();
  });

  let errors: string[] = [];
  async function logIn(path: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}${path}`);
    await page.fill('#token', f.tokens.viewer);
    await Promise.all([page.waitForURL(`${base}${path}`), page.click('#login-form button[type=submit]')]);
    return page;
  }

  it('shows a running run with the progress the terminal shows, and updates itself until it ends', { timeout: 120_000 }, async () => {
    trainer.hold();
    const done = loop.trainNow({ actor: 'otto', note: 'base model' });
    const page = await logIn('/console/training');
    // The page renders what the loop reported so far; the run is held at its third epoch.
    await page.waitForSelector('#runs tr[data-status="running"] .live-line:text("epoch 3/3: loss 0.2500")', { timeout: 30_000 });
    expect(await page.locator('#live').count()).toBe(1);
    trainer.release();
    const run = await done;
    expect(run.status).toBe('accepted');
    // No reload by the test: the page reloads itself while a run is in progress, and stops after.
    await page.waitForSelector(`#runs tr[data-run="${run.id}"][data-status="accepted"]`, { timeout: 30_000 });
    expect(await page.locator('#live').count()).toBe(0);
    const row = page.locator(`#runs tr[data-run="${run.id}"]`);
    expect(await row.locator('a').first().getAttribute('href')).toBe(`/console/training/runs/${run.id}`);
    expect(await row.innerText()).toContain('digits@1.0.0');
    expect(errors).toEqual([]);
  });

  it('a run page: dataset, parameters as a table, the gate as candidate against production with each rule and verdict, links to its model and rollout', { timeout: 120_000 }, async () => {
    // The first run's rollout is still going on the same devices: end it, so this run's can start.
    for (const r of f.ctx.rollouts.list()) f.ctx.rollouts.command(r.state.id, 'abort', 'otto');
    await fieldSamples(f.ctx, { offset: 3000, count: 30, devices: ['pit-3-a', 'pit-3-b'], drift: { rotate: 20, dim: 0.3 }, labeler: 'lena', at: f.clock.now() });
    f.clock.advance(3_600_000);
    const run = await loop.trainNow({ actor: 'otto' });
    expect(run.status).toBe('accepted');
    expect(run.rollout_id).toBeTruthy();
    const page = await logIn('/console/training');
    await Promise.all([page.waitForURL(`${base}/console/training/runs/${run.id}`), page.click(`#runs a[href="/console/training/runs/${run.id}"]`)]);

    const params = await page.$$eval('#params tr', (rows) => Object.fromEntries(rows.map((r) => [r.querySelector('th')?.textContent ?? '', r.querySelector('td')?.textContent ?? ''])));
    expect(params).toMatchObject({ trainer: 'paced', seed: '3' });
    expect(await page.locator('#dataset').innerText()).toMatch(/\d+ train, 40 clean holdout, \d+ field holdout/);

    // The gate table: the same numbers as the stored report, the verdicts the gate gave.
    const report = (await loop.runs.report(run.id)) as { candidate: { clean: { accuracy: number; correct: number; count: number } }; production: { clean: { accuracy: number; correct: number; count: number } } };
    const gate = await page.$$eval('#gate tbody tr', (rows) => rows.map((r) => ({ measure: r.getAttribute('data-measure'), verdict: r.getAttribute('data-verdict'), cells: [...r.querySelectorAll('td')].map((td) => td.textContent ?? '') })));
    const clean = gate.find((g) => g.measure === 'clean holdout accuracy');
    const p = report.production.clean;
    const c = report.candidate.clean;
    expect(clean?.cells.slice(1, 3)).toEqual([`${(p.accuracy * 100).toFixed(1)}% (${p.correct}/${p.count})`, `${(c.accuracy * 100).toFixed(1)}% (${c.correct}/${c.count})`]);
    expect(clean?.cells[4]).toBe('at most 100 pts down');
    expect(clean?.verdict).toBe(run.gate?.checks.find((k) => k.name === 'clean_drop')?.passed ? 'pass' : 'fail');
    expect(gate.map((g) => g.measure)).toEqual(expect.arrayContaining(['field holdout accuracy', 'class 0, clean', 'class 9, clean', 'latency p95']));
    // Every check the gate made has its row with the same verdict.
    const judged = gate.filter((g) => g.verdict !== 'not judged');
    expect(judged).toHaveLength(run.gate?.checks.length ?? -1);

    expect(await page.locator('#run-model').getAttribute('href')).toBe('/console/models/digits/1.1.0');
    expect(await page.locator('#run-rollout').getAttribute('href')).toBe(`/console/rollouts/${run.rollout_id}`);
    // Progress as the terminal shows it, and the loss by epoch in a chart whose texts keep apart.
    expect(await page.locator('#progress-lines').innerText()).toContain('epoch 2/3: loss 0.3333');
    for (const g of await chartGeometry(page)) {
      expect(outside(g)).toEqual([]);
      expect(overlaps(g)).toEqual([]);
    }
    await page.screenshot({ path: join(pkgs.dir, 'run.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it('says how a model the loop did not train was made, from its manifest (not "pushed by hand")', async () => {
    await imagePackage(join(pkgs.dir, 'base'), { seed: 1, extra: { description: 'Digit classifier by the local trainer', lineage: { trainer: 'local', code_version: 'cnn-7' } } });
    await f.ctx.registry.push(join(pkgs.dir, 'base'), { actor: 'ada' });
    await imagePackage(join(pkgs.dir, 'hand'), { seed: 2, version: '2.0.0' });
    await f.ctx.registry.push(join(pkgs.dir, 'hand'), { actor: 'ada' });
    const page = await logIn('/console/models/pets/1.0.0');
    const made = await page.locator('#provenance .made-by').innerText();
    expect(made).toContain('Trained outside the learning loop by the local trainer (code cnn-7)');
    expect(made).not.toContain('pushed by hand');
    await page.goto(`${base}/console/models/pets/2.0.0`);
    expect(await page.locator('#provenance .made-by').innerText()).toContain('pushed by hand');
  });
});
