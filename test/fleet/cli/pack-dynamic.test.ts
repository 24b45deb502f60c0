import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as agentMain } from '../../../agent/cli/main.js';
import { imageAxes, resolveInputDims } from '../../../fleet/adapters/fs/pack-dims.js';
import { packModel } from '../../../fleet/adapters/fs/pack.js';
import { main as fleetMain } from '../../../fleet/edges/cli/main.js';
import { checkManifest } from '../../../shared/package/index.js';
import { io } from '../../helpers/fleet-cli.js';
import { dynamicColourModel } from '../../helpers/models.js';
import { tempDir } from '../../helpers/packages.js';

const solid = (w: number, h: number, rgb: [number, number, number]): Promise<Buffer> => sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();

let tmp: ReturnType<typeof tempDir>;
let labels: string;
beforeAll(() => {
  tmp = tempDir();
  labels = join(tmp.dir, 'l.txt');
  writeFileSync(labels, 'red\nblue\n');
});
afterAll(() => tmp.cleanup());

describe('pack: models exported with dynamic axes (issue 14)', () => {
  it('the issue case: dynamic batch/height/width, --width/--height/--mean/--std are used and infer runs it', async () => {
    const onnx = join(tmp.dir, 'model.onnx');
    writeFileSync(onnx, dynamicColourModel().bytes);
    const out = join(tmp.dir, 'pkg');
    const o = io();
    const code = await fleetMain(['pack', onnx, '--labels', labels, '--out', out, '--width', '192', '--height', '48', '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5', '--json'], o);
    expect(o.stderr.filter((l) => !l.startsWith('warning: no golden inputs'))).toEqual([]);
    expect(code).toBe(0);
    const m = JSON.parse(o.stdout[0]!) as { inputs: Array<{ shape: unknown[]; dims: number[] }>; preprocessing: Record<string, unknown> };
    expect(m.inputs[0]).toMatchObject({ shape: ['batch', 3, 'height', 'width'], dims: [1, 3, 48, 192] });
    expect(m.preprocessing).toMatchObject({ kind: 'image', width: 192, height: 48, layout: 'NCHW', color: 'rgb', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    // The stored manifest says the same (the device reads the file, not the CLI's echo).
    expect((JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as typeof m).inputs[0]!.dims).toEqual([1, 3, 48, 192]);

    const red = join(tmp.dir, 'red.png');
    const blue = join(tmp.dir, 'blue.jpg');
    writeFileSync(red, await solid(300, 100, [230, 20, 10]));
    writeFileSync(blue, await solid(64, 640, [10, 30, 220]));
    const run = io();
    expect(await agentMain(['infer', '--model', out, '--allow-unsigned', '--json', red, blue], run)).toBe(0);
    const lines = run.stdout.map((l) => JSON.parse(l) as { label: string; score: number });
    expect(lines.map((l) => l.label)).toEqual(['red', 'blue']);
    expect(lines[0]!.score).toBeGreaterThan(0.9);
  });

  it('NHWC with symbolic H and W, sizes from the imgsz the model records', async () => {
    const onnx = join(tmp.dir, 'nhwc.onnx');
    writeFileSync(onnx, dynamicColourModel({ layout: 'NHWC', imgsz: '[40, 56]' }).bytes);
    const { manifest } = await packModel({ onnxPath: onnx, outDir: join(tmp.dir, 'nhwc'), labels: ['red', 'blue'] });
    expect(manifest.inputs[0]!.dims).toEqual([1, 40, 56, 3]);
    expect(manifest.preprocessing).toMatchObject({ kind: 'image', layout: 'NHWC', width: 56, height: 40 });
    const img = join(tmp.dir, 'b2.png');
    writeFileSync(img, await solid(20, 20, [0, 0, 255]));
    const run = io();
    expect(await agentMain(['infer', '--model', join(tmp.dir, 'nhwc'), '--allow-unsigned', '--json', img], run)).toBe(0);
    expect(JSON.parse(run.stdout[0]!)).toMatchObject({ label: 'blue' });
  });

  it('refuses a dim neither fixed nor given, naming the dim and its flag', async () => {
    const onnx = join(tmp.dir, 'nosize.onnx');
    writeFileSync(onnx, dynamicColourModel().bytes);
    const o = io();
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'x1'), '--width', '64'], o)).toBe(1);
    expect(o.stderr[0]).toMatch(/^FLEET_PACK_DIM_UNRESOLVED: input x dim 2 \("height"\) is symbolic and no flag gives it: set it with --height N or --dim height=N/);
    // --dim by name fills it as well.
    const ok = io();
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'x2'), '--dim', 'height=32', '--dim', 'width=16', '--json'], ok)).toBe(0);
    expect(JSON.parse(ok.stdout[0]!)).toMatchObject({ inputs: [{ dims: [1, 3, 32, 16] }], preprocessing: { width: 16, height: 32 } });
  });

  it('a symbolic channel dim is an image once --channels (or --color) gives 1 or 3', async () => {
    const onnx = join(tmp.dir, 'chan.onnx');
    writeFileSync(onnx, dynamicColourModel({ dims: ['n', 'c', 'h', 'w'] }).bytes);
    const o = io();
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'c1'), '--width', '8', '--height', '8'], o)).toBe(1);
    expect(o.stderr[0]).toMatch(/^FLEET_PACK_FLAG_UNUSED: --width, --height set image preprocessing, but input x \[n,c,h,w\] is not an image/);
    const ok = io();
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'c2'), '--width', '8', '--height', '8', '--channels', '3', '--json'], ok)).toBe(0);
    expect(JSON.parse(ok.stdout[0]!)).toMatchObject({ inputs: [{ dims: [1, 3, 8, 8] }], preprocessing: { kind: 'image', layout: 'NCHW', color: 'rgb' } });
  });

  it('never ignores a flag: image flags on a tensor input, a size against a fixed dim, --dim naming nothing, mean per missing channel', async () => {
    const onnx = join(tmp.dir, 'fixed.onnx');
    writeFileSync(onnx, dynamicColourModel({ dims: ['batch', 3, 24, 'width'] }).bytes);
    const cases: Array<[string[], RegExp]> = [
      [['--width', '8', '--height', '20'], /^FLEET_PACK_FLAG_UNUSED: --height 20 disagrees with input x, whose dim 2 is fixed at 24/],
      [['--width', '8', '--dim', 'depth=2'], /^FLEET_PACK_FLAG_UNUSED: --dim depth: input x \[batch,3,24,width\] has no such symbolic dim \(it has batch, width\)/],
      [['--width', '8', '--tensor', '--mean', '0.5'], /^FLEET_PACK_FLAG_UNUSED: --width, --mean set image preprocessing, but input x .* is packed as a tensor/],
      [['--width', '8', '--color', 'grayscale'], /^FLEET_PACK_FLAG_UNUSED: --color grayscale does not fit input x, which has 3 channel/],
      [['--width', '8', '--mean', '0.5,0.5'], /^FLEET_PACK_FLAG_UNUSED: --mean has 2 values; input x has 3 channel/],
      [['--width', '8', '--dim', 'batch=4'], /^FLEET_PACK_FLAG_UNUSED: --dim batch=4: the agent feeds one example per run/],
      [['--dim', 'width=0'], /^FLEET_USAGE: --dim takes NAME=N with N a positive integer/],
    ];
    for (const [args, want] of cases) {
      const o = io();
      expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'f'), ...args], o)).not.toBe(0);
      expect(o.stderr[0]).toMatch(want);
    }
  });

  it('the package rules: dims must agree with the shape, and a symbolic dim with no dims is still refused', async () => {
    const { manifest } = await packModel({ onnxPath: join(tmp.dir, 'model.onnx'), outDir: join(tmp.dir, 'rules'), labels: ['red', 'blue'], image: { width: 10, height: 12 } });
    const raw = JSON.parse(readFileSync(join(tmp.dir, 'rules', 'manifest.json'), 'utf8')) as { inputs: Array<Record<string, unknown>> };
    expect(manifest.inputs[0]!.dims).toEqual([1, 3, 12, 10]);
    raw.inputs[0]!.dims = [1, 1, 12, 10];
    expect(checkManifest(raw).problems.map((p) => p.message)).toContain('input x dims [1,1,12,10] do not fit its shape [batch,3,height,width]');
    delete raw.inputs[0]!.dims;
    expect(checkManifest(raw).problems.map((p) => p.rule)).toContain('input_shape');
    // Without a batch dim (batch_dim: false) the dims are one image's: [C, H, W], nothing in front.
    raw.inputs[0] = { ...raw.inputs[0], shape: [3, 'height', 'width'], dims: [3, 12, 10], batch_dim: false };
    expect(checkManifest(raw).problems).toEqual([]);
    raw.inputs[0] = { ...raw.inputs[0], shape: ['batch', 3, 'height', 'width'], dims: [1, 3, 12, 10], batch_dim: false };
    expect(checkManifest(raw).problems.map((p) => p.message)).toContain('input x shape [1,3,12,10] does not fit preprocessing NCHW rgb 10x12 (expected [3,12,10])');
  });

  it('imageAxes and resolveInputDims on third-party shapes', () => {
    expect(imageAxes(['batch', 3, 'h', 'w'])).toEqual({ layout: 'NCHW', c: 1, h: 2, w: 3, batched: true });
    expect(imageAxes([1, 'h', 'w', 1])).toEqual({ layout: 'NHWC', c: 3, h: 1, w: 2, batched: true });
    expect(imageAxes(['b', 'seq', 'feat', 7])).toBeNull();
    expect(imageAxes([1, 3, 224, 3], { layout: 'NHWC' })).toEqual({ layout: 'NHWC', c: 3, h: 1, w: 2, batched: true });
    // One name at H and W is one size.
    expect(resolveInputDims('x', ['b', 3, 'size', 'size'], { width: 32 , named: { size: 32 } }).dims).toEqual([1, 3, 32, 32]);
    expect(() => resolveInputDims('x', ['b', 3, 'size', 'size'], { width: 32, height: 16 })).toThrow(/uses the dim "size" twice; 16 and 32/);
    // A sequence model: a non-image dim by name only.
    expect(resolveInputDims('tokens', ['batch', 'seq'], { named: { seq: 128 } })).toEqual({ dims: [1, 128], dynamic: true, batched: true, image: null });
    expect(() => resolveInputDims('tokens', ['batch', 'seq'], {})).toThrow(/set it with --dim seq=N/);
  });

  it('a 3-D image input has no batch dim (torchvision detection exports): CHW by its channel dim, HWC only when asked; a [batch, steps, 3] tensor stays a tensor', () => {
    expect(imageAxes([3, 'h', 'w'])).toEqual({ layout: 'NCHW', c: 0, h: 1, w: 2, batched: false });
    // Every axis dynamic (torchvision's own ONNX tests export dynamic_axes [0, 1, 2]): the channel count comes from --channels/--color.
    expect(imageAxes(['c', 'h', 'w'])).toBeNull();
    expect(imageAxes(['c', 'h', 'w'], { channels: 3 })).toEqual({ layout: 'NCHW', c: 0, h: 1, w: 2, batched: false });
    expect(imageAxes([1, 28, 28])).toBeNull();
    expect(imageAxes(['batch', 50, 3])).toBeNull();
    expect(imageAxes(['h', 'w', 3], { layout: 'NHWC' })).toEqual({ layout: 'NHWC', c: 2, h: 0, w: 1, batched: false });
    expect(imageAxes([3, 'h', 'w'], { tensor: true })).toBeNull();
    expect(resolveInputDims('images', [3, 'h', 'w'], { width: 320, height: 240 })).toEqual({ dims: [3, 240, 320], dynamic: true, batched: false, image: { layout: 'NCHW', channels: 3, height: 240, width: 320 } });
    expect(resolveInputDims('images', ['c', 'h', 'w'], { width: 320, height: 240, colorChannels: 3 }).dims).toEqual([3, 240, 320]);
    // The first dim is the channel dim, never a batch dim filled with 1.
    expect(() => resolveInputDims('images', [3, 'h', 'w'], { width: 320 })).toThrow(/dim 1 \("h"\) is symbolic and no flag gives it: set it with --height N or --dim h=N/);
    // A fixed size needs no dims recorded, but the manifest still says there is no batch dim.
    expect(resolveInputDims('images', [3, 300, 400], {})).toMatchObject({ dims: [3, 300, 400], dynamic: false, batched: false });
  });
});
