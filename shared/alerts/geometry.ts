/** Plane geometry of the alert rules: pure functions, no I/O. */

/** [x1, y1, x2, y2] in pixels. */
export type Box = readonly [number, number, number, number];
export type Point = readonly [number, number];

/**
 * Whether a point lies inside a polygon (even-odd ray casting). A point exactly on an edge may
 * fall either way; zones are drawn by people, a pixel of difference does not matter.
 */
export function insidePolygon(p: Point, polygon: readonly Point[]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i]!;
    const [xj, yj] = polygon[j]!;
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** The anchor point of a box relative to the frame (0..1): its centre, or its bottom centre (where a person stands). */
export function anchorOf(box: Box, frame: { width: number; height: number }, anchor: 'center' | 'bottom_center'): Point {
  const x = (box[0] + box[2]) / 2 / frame.width;
  const y = (anchor === 'center' ? (box[1] + box[3]) / 2 : box[3]) / frame.height;
  return [x, y];
}
