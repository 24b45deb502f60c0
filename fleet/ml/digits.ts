import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { DIGIT_SIZE } from './digit-size.js';

/** How a camera has drifted: rotation (degrees), blur (sigma), dimming (0 = none, 1 = black). */
export interface CameraDrift {
  rotateDeg?: number;
  blurSigma?: number;
  dim?: number;
}

/** Camera frames are larger than the 28x28 digits, so the agent's resize is exercised. */
export const FRAME_SIZE = 64;

/**
 * Render an MNIST digit (ink intensity 0..1) as a camera-like PNG: dark ink on light paper,
 * upscaled to FRAME_SIZE (bilinear), optionally drifted with sharp (rotation, blur, dimming).
 * A clean frame is upscaled and PNG-encoded here, without a sharp pipeline: docs/decisions/0006-clean-frame-rendering.md.
 */
export async function renderDigitPng(pixels: Float32Array, drift: CameraDrift = {}): Promise<Buffer> {
  const frame = upscaleToFrame(pixels);
  const rotate = drift.rotateDeg ?? 0;
  const blur = drift.blurSigma !== undefined && drift.blurSigma >= 0.3 ? drift.blurSigma : 0;
  const dim = drift.dim ?? 0;
  if (!rotate && !blur && !dim) return encodeGrayPng(frame, FRAME_SIZE, FRAME_SIZE);
  const raw = { raw: { width: FRAME_SIZE, height: FRAME_SIZE, channels: 1 as const } };
  let img = sharp(frame, raw);
  if (rotate) {
    // Rotation grows the canvas; rotate, then crop the centre back to the frame.
    const rotated = await img.rotate(rotate, { background: { r: 255, g: 255, b: 255 } }).grayscale().raw().toBuffer({ resolveWithObject: true });
    const left = Math.max(0, Math.floor((rotated.info.width - FRAME_SIZE) / 2));
    const top = Math.max(0, Math.floor((rotated.info.height - FRAME_SIZE) / 2));
    img = sharp(rotated.data, { raw: { width: rotated.info.width, height: rotated.info.height, channels: rotated.info.channels } }).extract({ left, top, width: FRAME_SIZE, height: FRAME_SIZE });
  }
  if (blur) img = img.blur(blur);
  if (dim) img = img.linear(1 - dim, 0);
  return img.grayscale().png().toBuffer();
}

/** Ink of a 28x28 digit (0..1, clamped) resampled to side x side, bilinear with pixel centres aligned. */
export function resampleDigit(pixels: Float32Array, side: number): Float32Array {
  const out = new Float32Array(side * side);
  const ink = (x: number, y: number): number => Math.min(1, Math.max(0, pixels[y * DIGIT_SIZE + x] ?? 0));
  const scale = DIGIT_SIZE / side;
  for (let oy = 0; oy < side; oy++) {
    const fy = Math.min(DIGIT_SIZE - 1, Math.max(0, (oy + 0.5) * scale - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(DIGIT_SIZE - 1, y0 + 1);
    const ty = fy - y0;
    for (let ox = 0; ox < side; ox++) {
      const fx = Math.min(DIGIT_SIZE - 1, Math.max(0, (ox + 0.5) * scale - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(DIGIT_SIZE - 1, x0 + 1);
      const tx = fx - x0;
      out[oy * side + ox] = (ink(x0, y0) * (1 - tx) + ink(x1, y0) * tx) * (1 - ty) + (ink(x0, y1) * (1 - tx) + ink(x1, y1) * tx) * ty;
    }
  }
  return out;
}

/** Paper-white frame with the digit's ink, bilinear upscale (pixel centres aligned). */
function upscaleToFrame(pixels: Float32Array): Buffer {
  const ink = resampleDigit(pixels, FRAME_SIZE);
  const out = Buffer.alloc(FRAME_SIZE * FRAME_SIZE);
  for (let p = 0; p < out.length; p++) out[p] = Math.round(255 * (1 - (ink[p] as number)));
  return out;
}

/** An 8-bit greyscale PNG (filter 0 on every row, zlib-deflated), as any decoder reads it. */
export function encodeGrayPng(gray: Uint8Array, width: number, height: number): Buffer {
  const rows = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) rows.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: greyscale
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The demo's fixed split of the `mnist` package's 10,000 digits: the base model trains on the
 * first 7,000, the clean holdout is the next 2,000, and the cameras are fed from the last
 * 1,000, which no model ever trains on except as labeled field samples. Why 2,000 held out:
 * docs/decisions/0005-demo-split.md.
 */
export const BASE_TRAIN = { offset: 0, count: 7000 } as const;
export const CLEAN_HOLDOUT = { offset: 7000, count: 2000 } as const;
export const FEED = { offset: 9000, count: 1000 } as const;

/** How the pit-3 cameras drift in the demo: tilted, out of focus and dim. */
export const PIT_DRIFT: CameraDrift = { rotateDeg: 35, blurSigma: 1.2, dim: 0.45 };
