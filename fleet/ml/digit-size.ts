/**
 * The digits' geometry, written once: the `mnist` package's images, the CNN's input, the
 * augmentation and the rendering all work on these. No imports, so worker threads load it
 * without the 10,000-digit data module.
 */

/** Side length of the square digit images. */
export const DIGIT_SIZE = 28;
/** Pixels per image (28 × 28). */
export const DIGIT_PIXELS = DIGIT_SIZE * DIGIT_SIZE;
/** Number of digit classes. */
export const DIGIT_CLASSES = 10;
