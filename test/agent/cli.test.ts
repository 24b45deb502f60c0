import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as agentMain } from '../../agent/cli/main.js';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import { main as fleetMain } from '../../fleet/edges/cli/main.js';
import { io } from '../helpers/fleet-cli.js';
import { smallCnnModel } from '../helpers/models.js';
import { fleetKeys, imagePackage, patternImage, tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
let pub: string;
beforeAll(() => {
  tmp = tempDir();
  pub = join(tmp.dir, 'fleet.pub');
  writeFileSync(pub, fleetKeys().publicKeyPem);
});
afterAll(() => tmp.cleanup());

describe('edgeloop-agent infer', () => {
  it('prints one JSON line per input and a coded error line for a bad one', async () => {
    await imagePackage(join(tmp.dir, 'pets'));
    const good = join(tmp.dir, 'a.png');
    const bad = join(tmp.dir, 'b.jpg');
    writeFileSync(good, await patternImage(1));
    writeFileSync(bad, 'corrupt');
    const o = io();
    const code = await agentMain(['infer', '--model', join(tmp.dir, 'pets'), '--public-key', pub, '--json', good, bad], o);
    expect(code).toBe(1);
    const lines = o.stdout.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ file: good, model_version: '1.0.0', label: expect.any(String), score: expect.any(Number), topk: expect.any(Array), latency_ms: expect.any(Number), outlier: expect.any(Object) });
    expect(lines[1]).toMatchObject({ file: bad, error: { code: 'IMAGE_DECODE_FAILED' } });
    expect(o.stderr).toEqual([expect.stringMatching(/^error .*b\.jpg IMAGE_DECODE_FAILED: /)]);
  });

  it('refuses an unsigned package unless --allow-unsigned', async () => {
    await imagePackage(join(tmp.dir, 'unsigned'), { sign: false });
    const img = join(tmp.dir, 'c.png');
    writeFileSync(img, await patternImage(2));
    const refused = io();
    expect(await agentMain(['infer', '--model', join(tmp.dir, 'unsigned'), img], refused)).toBe(1);
    expect(refused.stderr[0]).toMatch(/^MODEL_SIGNATURE_INVALID: /);
    const allowed = io();
    expect(await agentMain(['infer', '--model', join(tmp.dir, 'unsigned'), '--allow-unsigned', img], allowed)).toBe(0);
    expect(allowed.stdout[0]).toMatch(/c\.png: (cat|dog|bird|fish) \(/);
  });

  it('has --help everywhere and a usage error for nonsense', async () => {
    for (const args of [['--help'], ['run', '--help'], ['infer', '--help'], ['queue', 'stats', '--help']]) {
      const o = io();
      expect(await agentMain(args, o)).toBe(0);
      expect(o.stdout.join('\n')).toMatch(/Usage/);
    }
    const o = io();
    expect(await agentMain(['infer', '--modle', 'x'], o)).toBe(2);
    expect(o.stderr[0]).toMatch(/^USAGE: .*--modle/);
  });
});

describe('edgeloop-agent queue stats', () => {
  it('reads a queue file without taking it over', async () => {
    const data = join(tmp.dir, 'agent-data');
    mkdirSync(data, { recursive: true });
    const q = openSqliteQueue({ path: join(data, 'queue.db'), quotaBytes: 1e6, clock: { now: () => 1000 } });
    q.enqueue({ id: 's1', kind: 'sample', priority: 6, meta: { a: 1 }, blob: new Uint8Array(10) });
    q.enqueue({ id: 's2', kind: 'sample', priority: 2, meta: { a: 2 } });
    const leased = q.lease(1, 60_000);
    const o = io();
    expect(await agentMain(['queue', 'stats', '--data', data, '--json'], o)).toBe(0);
    expect(JSON.parse(o.stdout[0]!)).toMatchObject({ depth: 2, enqueuedTotal: 2, byPriority: { 6: { depth: 1 }, 2: { depth: 1 } } });
    // The running owner's lease is untouched by the reader.
    expect(q.lease(10, 60_000).map((i) => i.id)).not.toContain(leased[0]!.id);
    q.close();
    const human = io();
    await agentMain(['queue', 'stats', '--data', data], human);
    expect(human.stdout[0]).toMatch(/^depth 2 /);
  });

  it('lists the samples the queue dropped for space, id by id, as JSON lines or for people', async () => {
    const data = join(tmp.dir, 'agent-dropped');
    mkdirSync(data, { recursive: true });
    const q = openSqliteQueue({ path: join(data, 'queue.db'), quotaBytes: 100, clock: { now: () => Date.UTC(2026, 0, 2) } });
    q.enqueue({ id: 'old', kind: 'sample', priority: 1, meta: {}, blob: new Uint8Array(60) });
    q.enqueue({ id: 'new', kind: 'sample', priority: 5, meta: {}, blob: new Uint8Array(60) }); // evicts old
    q.enqueue({ id: 'low', kind: 'sample', priority: 0, meta: {}, blob: new Uint8Array(60) }); // rejected
    const o = io();
    expect(await agentMain(['queue', 'dropped', '--data', data, '--json'], o)).toBe(0);
    expect(o.stdout.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      { ord: 1, id: 'old', priority: 1, bytes: 62, reason: 'evicted', at: Date.UTC(2026, 0, 2) },
      { ord: 2, id: 'low', priority: 0, bytes: 62, reason: 'rejected', at: Date.UTC(2026, 0, 2) },
    ]);
    const after = io();
    await agentMain(['queue', 'dropped', '--data', data, '--after', '1'], after);
    expect(after.stdout).toEqual(['2  2026-01-02T00:00:00.000Z  low  priority 0  62 bytes  rejected']);
    const stats = io();
    await agentMain(['queue', 'stats', '--data', data], stats);
    expect(stats.stdout[1]).toMatch(/evicted 2 \(124 bytes, 2 on record\)/);
    q.close();
  });
});

describe('edgeloop pack', () => {
  it('packs any classification ONNX file with defaults read from its input, signed', async () => {
    const model = smallCnnModel({ channels: 3, height: 32, width: 32, classes: 3, seed: 4, layout: 'NHWC', inputType: 'uint8' });
    const onnx = join(tmp.dir, 'byo.onnx');
    const labels = join(tmp.dir, 'labels.txt');
    const key = join(tmp.dir, 'fleet.key');
    const golden = join(tmp.dir, 'g.png');
    writeFileSync(onnx, model.bytes);
    writeFileSync(labels, 'red\ngreen\nblue\n');
    writeFileSync(key, fleetKeys().privateKeyPem);
    writeFileSync(golden, await patternImage(3, { width: 50, height: 40 }));
    const out = join(tmp.dir, 'byo-pkg');
    const o = io();
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', out, '--sign-key', key, '--version', '2.0.0', '--golden', golden, '--json'], o)).toBe(0);
    const m = JSON.parse(o.stdout[0]!) as Record<string, unknown>;
    expect(m).toMatchObject({ name: 'byo', version: '2.0.0', preprocessing: { kind: 'image', layout: 'NHWC', color: 'rgb', dtype: 'uint8', width: 32, height: 32, scale: 1 }, labels: ['red', 'green', 'blue'], golden: [{ file: expect.stringMatching(/^golden\//) }] });
    const run = io();
    expect(await agentMain(['infer', '--model', out, '--public-key', pub, '--json', golden], run)).toBe(0);
    expect(JSON.parse(run.stdout[0]!)).toMatchObject({ label: (m.golden as Array<{ expected_label: string }>)[0]!.expected_label });

    const wrong = io();
    writeFileSync(labels, 'only\ntwo\n');
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'x')], wrong)).toBe(1);
    expect(wrong.stderr[0]).toMatch(/^FLEET_PACK_FAILED: the model has 3 output classes, the labels file 2/);
  });
});
