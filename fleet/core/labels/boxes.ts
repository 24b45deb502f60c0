/**
 * Box labels of detection samples: the one schema (HTTP bodies, label events, dataset entries
 * all read it) and the pure checks against the image and the model's classes.
 *
 * Boxes are `[x1, y1, x2, y2]` in the pixels of the image as the device captured it (the
 * stored blob), the same frame the agent reports detections in. An empty list is a label too:
 * "nothing in this image", confirmed by a person.
 */
import { z } from 'zod';

/** At most this many boxes per image: a dense crowd fits, a runaway client does not. */
export const MAX_BOXES = 300;

const coordinate = z.number().finite();

/** One labeled object: its class and box `[x1, y1, x2, y2]` in original-image pixels. */
const boxLabel = z.strictObject({
  label: z.string().trim().min(1, 'a box needs a class').max(128),
  box: z.tuple([coordinate, coordinate, coordinate, coordinate]),
});
export type BoxLabel = z.infer<typeof boxLabel>;

/** The boxes of one image (empty: nothing in it). */
export const boxLabels = z.array(boxLabel).max(MAX_BOXES, `at most ${MAX_BOXES} boxes per image`);

/** Width and height in pixels of the image the boxes are in. */
export const frameSize = z.strictObject({ width: z.number().int().positive(), height: z.number().int().positive() });
export type FrameSize = z.infer<typeof frameSize>;

/**
 * Every reason a box list does not fit its image and classes, one line per box at fault
 * (empty when it fits): a box outside the frame, an empty or inverted box (x1 >= x2 or
 * y1 >= y2), a class the model does not have.
 */
export function boxProblems(boxes: readonly BoxLabel[], frame: FrameSize, classes: readonly string[]): string[] {
  const known = new Set(classes);
  const problems: string[] = [];
  boxes.forEach((b, i) => {
    const [x1, y1, x2, y2] = b.box;
    if (!known.has(b.label)) problems.push(`boxes.${i}.label: ${JSON.stringify(b.label)} is not one of the model's classes (${classes.join(', ')})`);
    if (!(x1 < x2 && y1 < y2)) problems.push(`boxes.${i}.box: needs x1 < x2 and y1 < y2, got [${b.box.join(', ')}]`);
    if (x1 < 0 || y1 < 0 || x2 > frame.width || y2 > frame.height) problems.push(`boxes.${i}.box: [${b.box.join(', ')}] is outside the ${frame.width}x${frame.height} image`);
  });
  return problems;
}

/** A box label as stored with a label event and a dataset entry: the boxes and the image size they are in. */
export const boxAnnotation = z.strictObject({ frame: frameSize, boxes: boxLabels });
export type BoxAnnotation = z.infer<typeof boxAnnotation>;
