/**
 * Accuracy of a model package on labelled images, measured the way a device would: the
 * manifest's preprocessing through the agent's `imageToTensor`, then ONNX Runtime. Used by the
 * base-model builder, the `train` benchmark and the trainer tests (the evaluation gate has its
 * own, richer report).
 */
import '../../../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import * as ort from 'onnxruntime-node';
import { imageToTensor } from '../../../shared/inference/preprocess.js';
import type { ImagePreprocessing } from '../../../shared/schemas/index.js';
import { readVerifiedPackage } from './evaluate.js';

export interface LabelledImage {
  label: string;
  bytes: Uint8Array;
}

export interface PackageAccuracy {
  accuracy: number;
  correct: number;
  total: number;
  /** Per true label: how many images, how many classified correctly. */
  perClass: Record<string, { count: number; correct: number }>;
}

/** Fraction of `images` the package classifies correctly (arg-max of its output), in batches of 100. */
export async function packageAccuracy(dir: string, images: readonly LabelledImage[]): Promise<PackageAccuracy> {
  const { manifest, modelBytes } = await readVerifiedPackage(dir);
  if (manifest.preprocessing.kind !== 'image') throw new Error(`${manifest.name} is not an image model`);
  if (manifest.task !== 'classification') throw new Error(`${manifest.name} is a ${manifest.task} model; accuracy is measured for classifiers`);
  const pre = manifest.preprocessing as ImagePreprocessing;
  const session = await ort.InferenceSession.create(modelBytes);
  const input = manifest.inputs[0]!.name;
  const output = manifest.postprocessing.output ?? manifest.outputs[0]!.name;
  let correct = 0;
  const perClass: PackageAccuracy['perClass'] = {};
  try {
    for (let start = 0; start < images.length; start += 100) {
      const batch = images.slice(start, start + 100);
      const tensors = await Promise.all(batch.map((im) => imageToTensor(im.bytes, pre)));
      const item = tensors[0]!.itemDims;
      const size = item.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size * batch.length);
      tensors.forEach((t, i) => data.set(t.data as Float32Array, i * size));
      const res = await session.run({ [input]: new ort.Tensor('float32', data, [batch.length, ...item]) });
      const out = res[output]!.data as Float32Array;
      const classes = out.length / batch.length;
      batch.forEach((im, i) => {
        let best = 0;
        for (let c = 1; c < classes; c++) if ((out[i * classes + c] as number) > (out[i * classes + best] as number)) best = c;
        const cls = (perClass[im.label] ??= { count: 0, correct: 0 });
        cls.count++;
        if (manifest.labels[best] === im.label) {
          correct++;
          cls.correct++;
        }
      });
    }
  } finally {
    await session.release();
  }
  return { accuracy: images.length ? correct / images.length : 0, correct, total: images.length, perClass };
}

/**
 * Per class, how many points `after` scores below `before` on the same images (negative: it
 * improved), in `labels` order (default: the classes `before` saw). The gate's per-class rule
 * looks at the largest.
 */
export function classDropPoints(before: PackageAccuracy, after: PackageAccuracy, labels: readonly string[] = Object.keys(before.perClass)): number[] {
  return labels.map((l) => {
    const b = before.perClass[l];
    return b ? ((b.correct - (after.perClass[l]?.correct ?? 0)) / b.count) * 100 : 0;
  });
}
