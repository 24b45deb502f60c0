/**
 * Deterministic ONNX model factories for tests and benchmarks.
 *
 * Weights are random (seeded) — these models are about shapes, operators and cost, not accuracy.
 * The same seed always yields byte-identical models, so digests and caches are stable.
 */
import { heUniform, mulberry32, uniformArray } from '../../fleet/ml/init.js';
import { GraphBuilder } from '../../shared/onnx/builder.js';
import type { Dim, OnnxDType } from '../../shared/onnx/builder.js';

/** What every factory returns: the model bytes and how to feed/read it. */
export interface GeneratedModel {
  bytes: Uint8Array;
  inputName: string;
  outputName: string;
  inputType: Extract<OnnxDType, 'float32' | 'uint8'>;
  /** Input shape; `'batch'` is symbolic. */
  inputShape: Dim[];
  outputShape: Dim[];
}

// ---------------------------------------------------------------------------------------------
// MLP

/** Options for {@link mlpModel}. */
export interface MlpModelOptions {
  features: number;
  hidden: number;
  classes: number;
  seed: number;
  /** Append a Softmax so the output is `probabilities`; otherwise it is `logits`. */
  softmax: boolean;
}

/** Weights of the generated MLP: `y = relu(x·w1 + b1)·w2 + b2`, row-major `[in, out]`. */
export interface MlpModelWeights {
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
}

/**
 * A tabular/sensor MLP: input `[batch, features]` float32 → Gemm → Relu → Gemm (→ Softmax),
 * output `[batch, classes]`. The weights are returned so tests can recompute the forward pass.
 */
export function mlpModel(opts: MlpModelOptions): GeneratedModel & { weights: MlpModelWeights } {
  const { features, hidden, classes, seed, softmax } = opts;
  const rand = mulberry32(seed);
  const weights: MlpModelWeights = {
    w1: heUniform(rand, features * hidden, features),
    // Non-zero biases so a test comparing against a hand-written forward pass also checks them.
    b1: uniformArray(rand, hidden, 0.1),
    w2: uniformArray(rand, hidden * classes, Math.sqrt(3 / hidden)),
    b2: uniformArray(rand, classes, 0.1),
  };
  const g = new GraphBuilder('mlp');
  const x = g.input('input', 'float32', ['batch', features]);
  const h = g.node('Relu', [g.node('Gemm', [x, g.initializer('w1', weights.w1, [features, hidden]), g.initializer('b1', weights.b1, [hidden])])]);
  let y = g.node('Gemm', [h, g.initializer('w2', weights.w2, [hidden, classes]), g.initializer('b2', weights.b2, [classes])]);
  if (softmax) y = g.node('Softmax', [y], { axis: 1 });
  const outputName = softmax ? 'probabilities' : 'logits';
  const outputShape: Dim[] = ['batch', classes];
  g.output(y, 'float32', outputShape, outputName);
  return { bytes: g.toBytes(), inputName: x, outputName, inputType: 'float32', inputShape: ['batch', features], outputShape, weights };
}

// ---------------------------------------------------------------------------------------------
// Small CNN

/** Options for {@link smallCnnModel}. */
export interface SmallCnnOptions {
  channels: 1 | 3;
  height: number;
  width: number;
  classes: number;
  seed: number;
  layout: 'NCHW' | 'NHWC';
  /** `uint8` inputs (raw pixels) are cast to float and scaled to [0, 1] inside the graph. */
  inputType: 'float32' | 'uint8';
  /** Append a Softmax (default true) so the output is `probabilities`; otherwise `logits`. */
  softmax?: boolean;
}

/**
 * A small conv net: [Cast, Mul 1/255] → [Transpose NHWC→NCHW] → Conv3x3(8) → Relu → MaxPool2x2 →
 * Conv3x3(16) → Relu → GlobalAveragePool → Flatten → Gemm(classes) [→ Softmax].
 * GlobalAveragePool makes it work for any input size ≥ 2×2 (28×28 digits, 32×32 RGB, …).
 */
export function smallCnnModel(opts: SmallCnnOptions): GeneratedModel {
  const { channels, height, width, classes, seed, layout, inputType } = opts;
  const softmax = opts.softmax ?? true;
  const rand = mulberry32(seed);
  const g = new GraphBuilder('small_cnn');
  const inputShape: Dim[] = layout === 'NCHW' ? ['batch', channels, height, width] : ['batch', height, width, channels];
  let t = g.input('input', inputType, inputShape);
  if (inputType === 'uint8') {
    t = g.node('Mul', [g.node('Cast', [t], { to: 1 /* FLOAT */ }), g.scalar('inv255', 1 / 255)]);
  }
  if (layout === 'NHWC') t = g.node('Transpose', [t], { perm: [0, 3, 1, 2] });
  const conv = (name: string, input: string, cin: number, cout: number): string =>
    g.node('Conv', [input, g.initializer(`${name}_w`, heUniform(rand, cout * cin * 9, cin * 9), [cout, cin, 3, 3]), g.initializer(`${name}_b`, new Float32Array(cout), [cout])], {
      kernel_shape: [3, 3],
      pads: [1, 1, 1, 1],
    });
  t = g.node('Relu', [conv('conv1', t, channels, 8)]);
  t = g.node('MaxPool', [t], { kernel_shape: [2, 2], strides: [2, 2] });
  t = g.node('Relu', [conv('conv2', t, 8, 16)]);
  t = g.node('Flatten', [g.node('GlobalAveragePool', [t])], { axis: 1 });
  t = g.node('Gemm', [t, g.initializer('fc_w', uniformArray(rand, classes * 16, Math.sqrt(3 / 16)), [classes, 16]), g.initializer('fc_b', new Float32Array(classes), [classes])], { transB: 1 });
  if (softmax) t = g.node('Softmax', [t], { axis: 1 });
  const outputName = softmax ? 'probabilities' : 'logits';
  const outputShape: Dim[] = ['batch', classes];
  g.output(t, 'float32', outputShape, outputName);
  return { bytes: g.toBytes(), inputName: 'input', outputName, inputType, inputShape, outputShape };
}

// ---------------------------------------------------------------------------------------------
// MobileNetV2-like

/** Options for {@link mobilenetLikeModel}. */
export interface MobilenetLikeOptions {
  seed: number;
  /** Append a Softmax (default true) so the output is `probabilities`; otherwise `logits`. */
  softmax?: boolean;
}

/** Result of {@link mobilenetLikeModel}; cost figures are computed from the built layers. */
export interface MobilenetLikeModel extends GeneratedModel {
  /** Multiply-accumulates for one 224×224 image (Conv + Gemm; activations and adds ignored). */
  macs: number;
  /**
   * `macs / 1e6`, i.e. millions of multiply-adds — the convention behind MobileNetV2's published
   * "300M MAdds", *not* 2·MACs. Expect ≈ 300.
   */
  mflops: number;
  /** Number of weights and biases. */
  params: number;
}

// MobileNetV2 (width 1.0) inverted-residual stages: expansion t, output channels c, repeats n, stride s.
const MOBILENET_V2_STAGES: ReadonlyArray<readonly [t: number, c: number, n: number, s: number]> = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/**
 * A MobileNetV2-shaped ImageNet classifier: input `[batch, 3, 224, 224]` float32, output
 * `[batch, 1000]`. Same layer plan as MobileNetV2 1.0 (BatchNorm folded into conv biases, so it
 * has the same ≈300M MAdds / 3.5M params) with random He-initialised weights; ReLU6 is `Clip(0, 6)`,
 * which together with the He scaling keeps activations finite.
 */
export function mobilenetLikeModel(opts: MobilenetLikeOptions): MobilenetLikeModel {
  const softmax = opts.softmax ?? true;
  const rand = mulberry32(opts.seed);
  const g = new GraphBuilder('mobilenet_like');
  let macs = 0;
  let params = 0;
  let size = 224;
  const six = g.scalar('relu6_max', 6);
  const zero = g.scalar('relu6_min', 0);
  const relu6 = (t: string): string => g.node('Clip', [t, zero, six]);

  let layer = 0;
  const conv = (input: string, cin: number, cout: number, k: number, stride: number, group = 1): string => {
    const name = `conv${layer++}`;
    const perGroup = cin / group;
    const w = heUniform(rand, cout * perGroup * k * k, perGroup * k * k);
    const pad = (k - 1) / 2;
    size = Math.floor((size + 2 * pad - k) / stride) + 1;
    macs += size * size * cout * perGroup * k * k;
    params += w.length + cout;
    return g.node(
      'Conv',
      [input, g.initializer(`${name}_w`, w, [cout, perGroup, k, k]), g.initializer(`${name}_b`, new Float32Array(cout), [cout])],
      { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad], group },
    );
  };

  let t = g.input('input', 'float32', ['batch', 3, 224, 224]);
  t = relu6(conv(t, 3, 32, 3, 2));
  let cin = 32;
  for (const [expand, cout, repeats, firstStride] of MOBILENET_V2_STAGES) {
    for (let r = 0; r < repeats; r++) {
      const stride = r === 0 ? firstStride : 1;
      const hidden = cin * expand;
      let b = t;
      if (expand !== 1) b = relu6(conv(b, cin, hidden, 1, 1));
      b = relu6(conv(b, hidden, hidden, 3, stride, hidden)); // depthwise
      b = conv(b, hidden, cout, 1, 1); // linear bottleneck: no activation
      t = stride === 1 && cin === cout ? g.node('Add', [t, b]) : b;
      cin = cout;
    }
  }
  t = relu6(conv(t, cin, 1280, 1, 1));
  t = g.node('Flatten', [g.node('GlobalAveragePool', [t])], { axis: 1 });
  const fcW = uniformArray(rand, 1000 * 1280, Math.sqrt(3 / 1280));
  macs += 1280 * 1000;
  params += fcW.length + 1000;
  t = g.node('Gemm', [t, g.initializer('fc_w', fcW, [1000, 1280]), g.initializer('fc_b', new Float32Array(1000), [1000])], { transB: 1 });
  if (softmax) t = g.node('Softmax', [t], { axis: 1 });
  const outputName = softmax ? 'probabilities' : 'logits';
  const outputShape: Dim[] = ['batch', 1000];
  g.output(t, 'float32', outputShape, outputName);
  return {
    bytes: g.toBytes(),
    inputName: 'input',
    outputName,
    inputType: 'float32',
    inputShape: ['batch', 3, 224, 224],
    outputShape,
    macs,
    mflops: macs / 1e6,
    params,
  };
}

// ---------------------------------------------------------------------------------------------
// Broken

/**
 * Bytes that are not a loadable model: a valid small model cut short, which is what a partial
 * download looks like. The graph's length prefix then overruns the buffer, so every protobuf
 * parser (and thus `InferenceSession.create`) must reject it.
 */
export function brokenModelBytes(): Uint8Array {
  const valid = mlpModel({ features: 4, hidden: 8, classes: 3, seed: 1, softmax: true }).bytes;
  return valid.slice(0, Math.floor(valid.length * 0.6));
}

// ---------------------------------------------------------------------------------------------
// Channel means (a model whose right answer is known)

/** The labels of {@link channelMeanModel}, in output order. */
export const COLOUR_LABELS = ['red', 'green', 'blue'];

/**
 * An image classifier whose answer can be worked out by hand: input `[1, 3, size, size]`
 * (NCHW RGB, the package scales pixels by 1/255), output logits `[1, 3]` = the mean of each
 * channel (GlobalAveragePool). A solid-colour image of (r, g, b) gives the logits
 * (r, g, b) / 255 whatever the resize, so its label is the strongest channel and its score
 * the softmax of those three numbers ({@link colourAnswer}).
 */
export function channelMeanModel(size = 16): GeneratedModel {
  const g = new GraphBuilder('channel_mean');
  const inputShape: Dim[] = [1, 3, size, size];
  const t = g.node('Flatten', [g.node('GlobalAveragePool', [g.input('input', 'float32', inputShape)])], { axis: 1 });
  const outputShape: Dim[] = [1, 3];
  g.output(t, 'float32', outputShape, 'logits');
  return { bytes: g.toBytes(), inputName: 'input', outputName: 'logits', inputType: 'float32', inputShape, outputShape };
}

/** What {@link channelMeanModel} packaged with softmax must answer for a solid (r, g, b) image. */
export function colourAnswer(rgb: readonly [number, number, number]): { label: string; score: number } {
  const e = rgb.map((c) => Math.exp(c / 255));
  const sum = e.reduce((a, b) => a + b, 0);
  const best = e.indexOf(Math.max(...e));
  return { label: COLOUR_LABELS[best]!, score: e[best]! / sum };
}

// ---------------------------------------------------------------------------------------------
// Dynamic-shape colour classifier

/**
 * A classifier exported with dynamic axes, as PyTorch `dynamic_axes` exports are: input
 * `[batch, 3, height, width]` (or NHWC `[batch, height, width, 3]`) → GlobalAveragePool → Gemm →
 * Softmax, output `[batch, 2]`. It really works for any H and W: class 0 (`red`) when the mean
 * red exceeds the mean blue, class 1 (`blue`) otherwise.
 */
export function dynamicColourModel(opts: { layout?: 'NCHW' | 'NHWC'; dims?: [Dim, Dim, Dim, Dim]; imgsz?: string } = {}): GeneratedModel {
  const layout = opts.layout ?? 'NCHW';
  const dims: Dim[] = opts.dims ?? (layout === 'NCHW' ? ['batch', 3, 'height', 'width'] : ['batch', 'height', 'width', 3]);
  const g = new GraphBuilder('dynamic_colour');
  if (opts.imgsz) g.meta('imgsz', opts.imgsz);
  const x = g.input('x', 'float32', dims);
  const nchw = layout === 'NCHW' ? x : g.node('Transpose', [x], { perm: [0, 3, 1, 2] });
  const pooled = g.node('Flatten', [g.node('GlobalAveragePool', [nchw])]);
  const w = Float32Array.from([8, -8, 0, 0, -8, 8]);
  const logits = g.node('Gemm', [pooled, g.initializer('w', w, [3, 2]), g.initializer('b', Float32Array.from([0, 0]), [2])]);
  const y = g.node('Softmax', [logits], { axis: 1 });
  g.output(y, 'float32', ['batch', 2], 'probs');
  return { bytes: g.toBytes(), inputName: 'x', outputName: 'probs', inputType: 'float32', inputShape: dims, outputShape: ['batch', 2] };
}
