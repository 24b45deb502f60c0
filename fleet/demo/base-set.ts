import type { BaseSetSource } from '../app/training/base-source.js';
import { mnistBaseSet } from '../app/training/base-sets.js';
import { renderDigitPng } from '../ml/digits.js';

/**
 * The demo's base set for the learning loop: `{ source: 'mnist', offset, count }` resolves to
 * the `mnist` package's digits rendered as camera frames (what devices capture), marked
 * `origin: 'base'`. Rendered once per process and kept: every retrain asks for the same slices.
 */
export function mnistBaseSource(): BaseSetSource {
  return mnistBaseSet({ render: (pixels) => renderDigitPng(pixels) });
}
