/**
 * Detection scenes from the `mnist` digits: several digits scaled to 20-40 px and scattered on a
 * larger sheet of paper, with their tight boxes (the ink's extent) and classes. A drifted camera
 * sees the same scenes differently (inverted, faded, closer), which is what the detection demo's
 * drifted site shows. Deterministic for a given seed.
 */
import { encodeGrayPng, resampleDigit } from '../digits.js';
import { mulberry32 } from '../init.js';
import type { DigitSet } from '../mnist-data.js';

/** A box in pixels with its class index (the digit). */
export interface SceneBox {
  cls: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface Scene {
  png: Buffer;
  width: number;
  height: number;
  boxes: SceneBox[];
}

/** How a site's camera sees the scenes. */
export interface SceneDrift {
  /** Light ink on dark paper. */
  invert?: boolean;
  /** Ink strength 0..1 (1 = full black ink); below ~0.4 the digits are faint. */
  contrast?: number;
  /** Digits this many times larger than the normal 20-40 px (a camera moved closer). */
  zoom?: number;
}

export interface SceneOptions {
  width: number;
  height: number;
  /** Digits per scene: uniform in [min, max]. */
  minDigits: number;
  maxDigits: number;
  /** Digit side in pixels before any zoom: uniform in [min, max]. */
  minSize: number;
  maxSize: number;
  drift?: SceneDrift;
}

const DEFAULT_SCENE: SceneOptions = { width: 96, height: 96, minDigits: 1, maxDigits: 4, minSize: 20, maxSize: 40 };

const overlap = (a: SceneBox, b: SceneBox): number => {
  const iw = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const ih = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0;
  return (iw * ih) / Math.min((a.x2 - a.x1) * (a.y2 - a.y1), (b.x2 - b.x1) * (b.y2 - b.y1));
};

/**
 * `count` scenes drawing digits from `digits` in turn (digit i of scene k is
 * digits[(first + k·maxDigits + i) mod n]), placed at random where they overlap no earlier digit
 * by more than 10% of the smaller box.
 */
export function makeScenes(digits: DigitSet, count: number, seed: number, o: SceneOptions = DEFAULT_SCENE): Scene[] {
  if (digits.images.length === 0) throw new RangeError('makeScenes needs digits');
  const rand = mulberry32(seed);
  const zoom = o.drift?.zoom ?? 1;
  const ink = Math.min(1, Math.max(0, o.drift?.contrast ?? 1));
  const scenes: Scene[] = [];
  let next = 0;
  for (let k = 0; k < count; k++) {
    const want = o.minDigits + Math.floor(rand() * (o.maxDigits - o.minDigits + 1));
    const paper = new Float32Array(o.width * o.height);
    const boxes: SceneBox[] = [];
    for (let i = 0; i < want; i++) {
      const d = next++ % digits.images.length;
      const side = Math.min(Math.min(o.width, o.height), Math.round((o.minSize + rand() * (o.maxSize - o.minSize)) * zoom));
      const glyph = resampleDigit(digits.images[d]!, side);
      // The ink's tight extent inside the glyph's square: the box a labeler draws.
      let [gx1, gy1, gx2, gy2] = [side, side, -1, -1];
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          if ((glyph[y * side + x] as number) < 0.2) continue;
          gx1 = Math.min(gx1, x);
          gy1 = Math.min(gy1, y);
          gx2 = Math.max(gx2, x);
          gy2 = Math.max(gy2, y);
        }
      }
      if (gx2 < 0) continue;
      for (let attempt = 0; attempt < 20; attempt++) {
        const left = Math.floor(rand() * (o.width - side + 1));
        const top = Math.floor(rand() * (o.height - side + 1));
        const box: SceneBox = { cls: digits.labels[d]!, x1: left + gx1, y1: top + gy1, x2: left + gx2 + 1, y2: top + gy2 + 1 };
        if (boxes.some((b) => overlap(b, box) > 0.1)) continue;
        for (let y = 0; y < side; y++) {
          for (let x = 0; x < side; x++) {
            const p = (top + y) * o.width + left + x;
            paper[p] = Math.max(paper[p] as number, glyph[y * side + x] as number);
          }
        }
        boxes.push(box);
        break;
      }
    }
    const gray = new Uint8Array(o.width * o.height);
    for (let p = 0; p < gray.length; p++) {
      const v = Math.round(255 * (1 - ink * Math.min(1, paper[p] as number)));
      gray[p] = o.drift?.invert ? 255 - v : v;
    }
    scenes.push({ png: encodeGrayPng(gray, o.width, o.height), width: o.width, height: o.height, boxes });
  }
  return scenes;
}
