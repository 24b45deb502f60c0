/**
 * Light data augmentation for 28×28 digit tensors: a random small affine warp (rotation, scale,
 * shift) with bilinear sampling, plus a random contrast gain. Pure and seeded: the caller passes
 * the PRNG, so a training run stays bit-reproducible.
 */
import { DIGIT_SIZE } from './digit-size.js';

const S = DIGIT_SIZE;

export interface AugmentOptions {
  /** Max rotation either way, degrees. */
  rotateDeg: number;
  /** Max relative scale change either way (0.1 = 90%..110%). */
  scale: number;
  /** Max shift either way, pixels. */
  shiftPx: number;
  /** Max relative ink-intensity change either way (0.2 = 80%..120%, clipped to [0, 1]). */
  gain?: number;
}

/** Returns an augment function for trainCnn. */
export function affineAugment(o: AugmentOptions): (image: Float32Array, out: Float32Array, rand: () => number) => void {
  return (x, out, rand) => {
    const angle = ((rand() * 2 - 1) * o.rotateDeg * Math.PI) / 180;
    const sc = 1 + (rand() * 2 - 1) * o.scale;
    const tx = (rand() * 2 - 1) * o.shiftPx;
    const ty = (rand() * 2 - 1) * o.shiftPx;
    const gain = 1 + (rand() * 2 - 1) * (o.gain ?? 0);
    // Inverse map: output pixel -> source coordinate, about the image centre.
    const cos = Math.cos(angle) / sc;
    const sin = Math.sin(angle) / sc;
    const c = (S - 1) / 2;
    for (let y = 0; y < S; y++) {
      const dy = y - c - ty;
      for (let xo = 0; xo < S; xo++) {
        const dx = xo - c - tx;
        const sx = cos * dx + sin * dy + c;
        const sy = -sin * dx + cos * dy + c;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        const v00 = px(x, x0, y0);
        const v10 = px(x, x0 + 1, y0);
        const v01 = px(x, x0, y0 + 1);
        const v11 = px(x, x0 + 1, y0 + 1);
        const v = (v00 * (1 - fx) + v10 * fx) * (1 - fy) + (v01 * (1 - fx) + v11 * fx) * fy;
        out[y * S + xo] = Math.min(1, v * gain);
      }
    }
  };
}

function px(x: Float32Array, i: number, j: number): number {
  return i < 0 || j < 0 || i >= S || j >= S ? 0 : (x[j * S + i] as number);
}
