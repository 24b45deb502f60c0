import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { imageToTensor, placeImage } from '../shared/inference/preprocess.js';
import { sampleJpeg } from './inference.js';
export async function go() {
  const jpeg = await sampleJpeg();
  const pre = { kind: 'image', width: 640, height: 640, fit: 'contain', color: 'rgb', layout: 'NCHW', mean: [0,0,0], std: [1,1,1], scale: 1/255, invert: false } as any;
  const { width = 0, height = 0 } = await sharp(jpeg).metadata();
  const placed = placeImage(width, height, pre);
  for (const name of ['imageToTensor', 'sharpOnly']) {
    const ts: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = performance.now();
      if (name === 'imageToTensor') await imageToTensor(jpeg, pre, { withGeometry: true, padValue: 114 });
      else await placed.apply(sharp(jpeg), 114).removeAlpha().toColourspace('srgb').raw().toBuffer();
      ts.push(performance.now() - t);
    }
    ts.sort((a, b) => a - b);
    console.log(name, 'p50', ts[15]!.toFixed(2));
  }
}
