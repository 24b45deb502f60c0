/**
 * Privacy zones: polygons (relative coordinates) blacked out or blurred on a JPEG frame with
 * sharp, before the frame can be captured or uplinked. The polygon mask is rasterised once
 * per frame size (an SVG rendered by sharp) and reused.
 */
import sharp from 'sharp';
import type { CameraConfig } from './camera-config.js';

type Privacy = NonNullable<CameraConfig['privacy']>;

export class PrivacyMask {
  private masks = new Map<string, Buffer>();

  constructor(private readonly p: Privacy) {}

  /** The frame with every zone hidden, as a JPEG of the same size. */
  async apply(jpeg: Buffer): Promise<Buffer> {
    const meta = await sharp(jpeg, { failOn: 'error' }).metadata();
    const w = meta.width;
    const h = meta.height;
    if (!w || !h) throw new Error('frame has no size');
    const mask = await this.maskFor(w, h);
    if (this.p.mode === 'black') {
      return sharp(jpeg).composite([{ input: mask }]).jpeg({ quality: 90 }).toBuffer();
    }
    // Blur: the blurred frame cut to the polygons (dest-in keeps it where the mask is opaque),
    // laid over the original.
    const blurred = await sharp(jpeg).blur(this.p.blur_sigma).composite([{ input: mask, blend: 'dest-in' }]).png().toBuffer();
    return sharp(jpeg).composite([{ input: blurred }]).jpeg({ quality: 90 }).toBuffer();
  }

  /** Opaque black polygons on a transparent canvas of the frame's size (PNG). */
  private async maskFor(w: number, h: number): Promise<Buffer> {
    const key = `${w}x${h}`;
    const hit = this.masks.get(key);
    if (hit) return hit;
    const polys = this.p.zones.map((z) => `<polygon points="${z.map(([x, y]) => `${(x * w).toFixed(2)},${(y * h).toFixed(2)}`).join(' ')}" fill="#000" fill-opacity="1"/>`).join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" shape-rendering="crispEdges">${polys}</svg>`;
    const mask = await sharp(Buffer.from(svg)).ensureAlpha().png().toBuffer();
    if (this.masks.size > 8) this.masks.clear();
    this.masks.set(key, mask);
    return mask;
  }
}
