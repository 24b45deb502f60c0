/**
 * What the demo's digit model looks like to devices: its labels and the image preprocessing its
 * manifest declares. The local trainer decodes training PNGs with exactly this preprocessing
 * (through the agent's own `imageToTensor`), so train and serve inputs cannot diverge.
 */
import type { PackOptions } from '../fs/pack.js';
import { imagePreprocessing, type ImagePreprocessing } from '../../../shared/schemas/index.js';
import { DIGIT_SIZE } from '../../ml/digit-size.js';

export const DIGIT_LABELS: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Manifest preprocessing: 28×28 grey, dark ink on light paper inverted to ink = 1, values in [0, 1]. */
export const DIGIT_IMAGE = { width: DIGIT_SIZE, height: DIGIT_SIZE, color: 'grayscale', layout: 'NCHW', dtype: 'float32', scale: 1 / 255, invert: true, fit: 'fill' } as const satisfies PackOptions['image'];

/** The same, parsed with schema defaults, as the agent builds it from the manifest. */
export const DIGIT_PREPROCESSING: ImagePreprocessing = imagePreprocessing.parse({ kind: 'image', ...DIGIT_IMAGE });

/** Outlier thresholds the demo's models ship with (overridable per run with `params.outlier`). */
export const DIGIT_OUTLIER = { min_confidence: 0.7, min_margin: 0.2, max_entropy: 0.6, random_sample_rate: 0.02, drift_psi: 0.5 } as const;
