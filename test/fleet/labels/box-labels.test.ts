import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { MIGRATIONS, migrate } from '../../../fleet/adapters/sqlite/migrations.js';
import { INSERT_SAMPLE_SQL, sampleRow } from '../../../fleet/adapters/sqlite/sample-rows.js';
import { sqliteSamplesRepo } from '../../../fleet/adapters/sqlite/samples-repo.js';
import { parseFilter } from '../../../fleet/app/samples/filter.js';
import * as S from '../../../fleet/edges/http/schemas.js';
import { DETECTOR, registerDetector, seedDetectSamples } from '../../helpers/detect-samples.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { join } from 'node:path';
import { call, openTestFleet, sampleMessageOf, seedSamples, T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';

let f: TestFleet;
let base: string;
const tmp = tempDir('edgeloop-boxes-');

beforeAll(async () => {
  f = await openTestFleet();
  base = await f.listen();
  await registerDetector(f.ctx, tmp.dir);
  await imagePackage(join(tmp.dir, 'pets'), { seed: 1 });
  await f.ctx.registry.push(join(tmp.dir, 'pets'), { actor: 'ada' });
  await f.ctx.devices.register('cam-1', { tags: { site: 'pit-1' } });
  await seedDetectSamples(f.ctx, [
    { id: 'det-1', device: 'cam-1', width: 200, height: 120, detections: [{ label: 'red', score: 0.41, box: [10, 20, 60, 70] }, { label: 'blue', score: 0.35, box: [150, 80, 205, 130] }] },
    { id: 'det-2', device: 'cam-1', width: 160, height: 90, format: 'jpeg', detections: [] },
  ]);
  await seedSamples(f.ctx, [{ id: 'cls-1', device: 'cam-1', label: 'cat', score: 0.4, model: { name: 'pets', version: '1.0.0' }, labels: ['cat', 'dog', 'bird', 'fish'] }]);
});
afterAll(async () => {
  await f?.close();
  tmp.cleanup();
});

const post = (path: string, body: unknown, token = f.tokens.labeler) => call(base, 'POST', path, { token, body });
const sample = async (id: string) => S.sampleRecord.parse((await call(base, 'GET', `/v1/samples/${id}`, { token: f.tokens.viewer })).json);

describe('box labels over HTTP', () => {
  it('stores boxes in the image pixels with who and when; relabel, history and undo work as for class labels', async () => {
    const boxes = [
      { label: 'red', box: [12, 18, 64, 71] },
      { label: 'blue', box: [150.5, 80, 200, 120] },
    ];
    const r = await post('/v1/samples/det-1/boxes', { boxes });
    expect(r.status).toBe(200);
    const first = S.sampleRecord.parse(r.json);
    expect(first.label).toMatchObject({ state: 'labeled', value: null, by: 'lena', boxes: { frame: { width: 200, height: 120 }, boxes } });

    // Nothing in the image is a label too.
    f.clock.advance(1000);
    const empty = await post('/v1/samples/det-1/boxes', { boxes: [] });
    expect(S.sampleRecord.parse(empty.json).label).toMatchObject({ state: 'labeled', boxes: { frame: { width: 200, height: 120 }, boxes: [] } });
    expect((await sample('det-1')).label?.boxes?.boxes).toEqual([]);

    // Undo brings back the previous boxes; history keeps both with the undo marked.
    f.clock.advance(1000);
    const undo = S.undoResponse.parse((await post('/v1/labels/undo', {})).json);
    expect(undo.undone).toMatchObject({ sample_id: 'det-1', action: 'assign', boxes: { boxes: [] }, undone_by: 'lena' });
    expect(undo.sample?.label?.boxes?.boxes).toEqual(boxes);
    const h = S.historyResponse.parse((await call(base, 'GET', '/v1/samples/det-1/history', { token: f.tokens.viewer })).json);
    expect(h.items.map((e) => [e.action, e.label, e.boxes?.boxes.length, e.undone_at !== null])).toEqual([
      ['assign', null, 2, false],
      ['assign', null, 0, true],
    ]);
    // The audit log names who, what and the previous value.
    const audit = f.ctx.audit.list({ limit: 500 }).items.filter((e) => e.target === 'det-1').map((e) => [e.action, e.actor, e.details]);
    expect(audit).toContainEqual(['label.assign', 'lena', { boxes: 0, classes: {}, previous: { boxes: 2, by: 'lena' } }]);
    expect(audit).toContainEqual(['label.undo', 'lena', { undone: 'assign' }]);
  });

  it('confirm accepts the predicted boxes, clipped to the image', async () => {
    const r = await post('/v1/samples/det-1/confirm', undefined);
    expect(r.status).toBe(200);
    expect(S.sampleRecord.parse(r.json).label?.boxes?.boxes).toEqual([
      { label: 'red', box: [10, 20, 60, 70] },
      { label: 'blue', box: [150, 80, 200, 120] },
    ]);
    // A JPEG frame where the model found nothing: confirming says "nothing here".
    const e = await post('/v1/samples/det-2/confirm', undefined);
    expect(S.sampleRecord.parse(e.json).label).toMatchObject({ state: 'labeled', boxes: { frame: { width: 160, height: 90 }, boxes: [] } });
    // A classifier's sample still confirms its class label.
    expect(S.sampleRecord.parse((await post('/v1/samples/cls-1/confirm', undefined)).json).label).toMatchObject({ value: 'cat' });
  });

  it('refuses a class label on a detection sample (it would reach a detector dataset without boxes), keeping its label', async () => {
    const before = (await sample('det-2')).label;
    const r = await post('/v1/samples/det-2/label', { label: 'red' });
    expect([r.status, (r.json as { error: { code: string } }).error.code]).toEqual([422, 'FLEET_BOXES_INVALID']);
    expect((await sample('det-2')).label).toEqual(before);
  });

  it('refuses boxes that do not fit, naming every problem, and stores nothing', async () => {
    const before = (await sample('det-2')).label;
    const bad = await post('/v1/samples/det-2/boxes', {
      boxes: [
        { label: 'red', box: [0, 0, 161, 10] },
        { label: 'truck', box: [5, 5, 20, 20] },
        { label: 'blue', box: [30, 30, 30, 40] },
        { label: 'blue', box: [-1, 10, 20, 40] },
      ],
    });
    expect(bad.status).toBe(422);
    const err = (bad.json as { error: { code: string; details: { problems: string[] } } }).error;
    expect(err.code).toBe('FLEET_BOXES_INVALID');
    expect(err.details.problems).toEqual([
      'boxes.0.box: [0, 0, 161, 10] is outside the 160x90 image',
      'boxes.1.label: "truck" is not one of the model\'s classes (red, blue)',
      'boxes.2.box: needs x1 < x2 and y1 < y2, got [30, 30, 30, 40]',
      'boxes.3.box: [-1, 10, 20, 40] is outside the 160x90 image',
    ]);
    const many = await post('/v1/samples/det-2/boxes', { boxes: Array.from({ length: 301 }, () => ({ label: 'red', box: [0, 0, 1, 1] })) });
    expect(many.status).toBe(400);
    expect((many.json as { error: { code: string } }).error.code).toBe('INPUT_INVALID');
    // Boxes on a classifier's sample are refused.
    const cls = await post('/v1/samples/cls-1/boxes', { boxes: [] });
    expect(cls.status).toBe(422);
    expect((cls.json as { error: { message: string } }).error.message).toMatch(/classification model/);
    // A viewer may not label.
    expect((await post('/v1/samples/det-2/boxes', { boxes: [] }, f.tokens.viewer)).status).toBe(403);
    expect((await sample('det-2')).label).toEqual(before);
    // The refusal was logged with its code.
    expect(f.logs.some((l) => JSON.stringify(l).includes('FLEET_BOXES_INVALID'))).toBe(true);
  });

  it('reads the image size of a JPEG whose metadata pushes the size past the first 64 KiB', async () => {
    await seedDetectSamples(f.ctx, [{ id: 'det-big', device: 'cam-1', width: 333, height: 111, format: 'jpeg', headerPadding: 150_000, detections: [] }]);
    const ok = await post('/v1/samples/det-big/boxes', { boxes: [{ label: 'red', box: [300, 100, 333, 111] }] });
    expect(ok.status).toBe(200);
    expect(S.sampleRecord.parse(ok.json).label?.boxes?.frame).toEqual({ width: 333, height: 111 });
    expect((await post('/v1/samples/det-big/boxes', { boxes: [{ label: 'red', box: [300, 100, 334, 111] }] })).status).toBe(422);
  });

  it('a dataset export holds the box labels; the class label of another model beside them', async () => {
    const r = await call(base, 'POST', '/v1/datasets', { token: f.tokens.labeler, body: { name: 'boxes' } });
    expect(r.status).toBe(201);
    const ds = S.exportDatasetResponse.parse(r.json).dataset;
    const byId = new Map(ds.entries.map((e) => [e.sample_id, e]));
    expect(byId.get('det-2')).toMatchObject({ boxes: [], frame: { width: 160, height: 90 } });
    expect(byId.get('det-2')?.label).toBeUndefined();
    expect(byId.get('det-1')?.boxes).toHaveLength(2);
    expect(byId.get('cls-1')).toMatchObject({ label: 'cat' });
    expect(byId.get('cls-1')?.boxes).toBeUndefined();
    // Boxes count under their class; the class label under its label.
    expect(ds.counts).toEqual({ red: 2, blue: 1, cat: 1 });
    // The per-device agreement (label = prediction) is a classifier's: box labels stay out of it.
    expect(f.ctx.labels.agreement()).toEqual([{ device_id: 'cam-1', model: 'pets', version: '1.0.0', labeled: 1, correct: 1 }]);
  });

  it('the sample of a model version the registry does not hold cannot get boxes (its classes are unknown)', async () => {
    await seedDetectSamples(f.ctx, [{ id: 'det-9', device: 'cam-1', width: 64, height: 64, detections: [], model: { name: DETECTOR.name, version: '9.0.0' } }]);
    const r = await post('/v1/samples/det-9/boxes', { boxes: [] });
    expect(r.status).toBe(422);
    expect((r.json as { error: { code: string; message: string } }).error).toMatchObject({ code: 'FLEET_BOXES_INVALID', message: expect.stringMatching(/haul-cam@9\.0\.0, which the registry does not hold/) });
  });
});

describe('migration 12 (box labels) on a database with class labels', () => {
  it('keeps every class label and its history; they read with no boxes, and boxes can follow', async () => {
    const t = tempDir('edgeloop-boxes-migrate-');
    try {
      const path = join(t.dir, 'fleet.db');
      // A fleet from before box labels: schema 9, one sample labeled then relabeled.
      const old = new Database(path);
      migrate(old, MIGRATIONS.slice(0, 9));
      const meta = (await sampleMessageOf({ id: 'old-1', device: 'cam-1', label: 'cat', score: 0.4 })).meta;
      old.prepare(INSERT_SAMPLE_SQL).run(sampleRow(meta, 'pit-1', T0));
      const seq = old.prepare('SELECT seq FROM samples').pluck().get() as number;
      const event = old.prepare('INSERT INTO label_events (sample_seq, action, label, actor, at) VALUES (?, ?, ?, ?, ?)');
      event.run(seq, 'assign', 'dog', 'lena', T0 + 1);
      event.run(seq, 'assign', 'cat', 'lena', T0 + 2);
      old.prepare("UPDATE samples SET label = 'cat', label_state = 'labeled', labeled_by = 'lena', labeled_at = ? WHERE seq = ?").run(T0 + 2, seq);
      old.close();

      const db = openFleetDb({ path });
      const repo = sqliteSamplesRepo(db);
      expect(repo.find('old-1')?.label).toEqual({ state: 'labeled', value: 'cat', by: 'lena', at: new Date(T0 + 2).toISOString() });
      expect(repo.history('old-1')?.map((e) => [e.label, e.boxes])).toEqual([
        ['dog', undefined],
        ['cat', undefined],
      ]);
      expect(repo.labeledEntries(parseFilter({ labeled: true }))).toEqual([
        { sample_id: 'old-1', label: 'cat', blob_sha256: meta.input.sha256, device_id: 'cam-1', labeled_by: 'lena', labeled_at: new Date(T0 + 2).toISOString() },
      ]);
      // Undo walks back through the old events as before.
      expect(repo.undoLast('lena', T0 + 3)?.label).toBe('cat');
      expect(repo.find('old-1')?.label?.value).toBe('dog');
      db.close();
    } finally {
      t.cleanup();
    }
  });
});
