import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { encodeGrayPng, FRAME_SIZE, PIT_DRIFT, renderDigitPng } from '../../fleet/ml/digits.js';
import { loadDigits } from '../../fleet/ml/mnist-data.js';

describe('demo camera frames', () => {
  it('encodes greyscale PNGs that sharp decodes back to the same pixels', async () => {
    const gray = Uint8Array.from({ length: 37 * 23 }, (_, i) => (i * 7919) % 256);
    const png = encodeGrayPng(gray, 37, 23);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels, meta.space]).toEqual(['png', 37, 23, 1, 'b-w']);
    const { data, info } = await sharp(png).grayscale().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([37, 23, 1]);
    expect(Buffer.from(data).equals(Buffer.from(gray))).toBe(true);
  });

  it('renders dark ink on light paper at frame size; a drifted frame is rotated, blurred and dimmer', async () => {
    const digit = loadDigits({ count: 1, offset: 3 }).images[0]!;
    const decode = async (b: Buffer) => sharp(b).grayscale().raw().toBuffer({ resolveWithObject: true });
    const clean = await decode(await renderDigitPng(digit));
    const drifted = await decode(await renderDigitPng(digit, PIT_DRIFT));
    for (const f of [clean, drifted]) expect([f.info.width, f.info.height, f.info.channels]).toEqual([FRAME_SIZE, FRAME_SIZE, 1]);
    const mean = (d: Buffer) => d.reduce((a, v) => a + v, 0) / d.length;
    // Paper in the corner, ink somewhere in the middle.
    expect(clean.data[0]).toBe(255);
    expect(Math.min(...clean.data)).toBeLessThan(60);
    expect(mean(drifted.data)).toBeLessThan(mean(clean.data) * 0.7);
    expect(Buffer.from(drifted.data).equals(Buffer.from(clean.data))).toBe(false);
  });
});
