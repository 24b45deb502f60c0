import { seededRandom } from '../../shared/ids.js';

/**
 * mulberry32: a tiny, fast 32-bit seeded PRNG returning floats in [0, 1). Good enough for weight
 * init and shuffling, and far faster than anything cryptographic for millions of weights.
 */
export const mulberry32 = seededRandom;

/** `count` values uniform in [-limit, limit). */
export function uniformArray(rand: () => number, count: number, limit: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (rand() * 2 - 1) * limit;
  return out;
}

/**
 * He (Kaiming) init for layers followed by ReLU, as a uniform distribution with the same variance
 * (std = sqrt(2 / fanIn) ⇒ limit = sqrt(6 / fanIn)); uniform avoids a Box–Muller per weight.
 */
export function heUniform(rand: () => number, count: number, fanIn: number): Float32Array {
  return uniformArray(rand, count, Math.sqrt(6 / fanIn));
}
