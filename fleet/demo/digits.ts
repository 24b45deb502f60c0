import sharp from 'sharp';
import { DIGIT_SIZE } from '../training/mnist-data.js';

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
 * upscaled to FRAME_SIZE, optionally drifted with sharp (rotation, blur, dimming).
 */
export async function renderDigitPng(pixels: Float32Array, drift: CameraDrift = {}): Promise<Buffer> {
  const raw = Buffer.alloc(DIGIT_SIZE * DIGIT_SIZE);
  for (let i = 0; i < raw.length; i++) raw[i] = Math.round(255 * (1 - Math.min(1, Math.max(0, pixels[i] ?? 0))));
  let img = sharp(raw, { raw: { width: DIGIT_SIZE, height: DIGIT_SIZE, channels: 1 } }).resize(FRAME_SIZE, FRAME_SIZE, { kernel: 'lanczos3' });
  if (drift.rotateDeg) {
    // Rotation grows the canvas; render, then crop the centre back to the frame.
    const rotated = await img.rotate(drift.rotateDeg, { background: { r: 255, g: 255, b: 255 } }).png().toBuffer({ resolveWithObject: true });
    const left = Math.max(0, Math.floor((rotated.info.width - FRAME_SIZE) / 2));
    const top = Math.max(0, Math.floor((rotated.info.height - FRAME_SIZE) / 2));
    img = sharp(rotated.data).extract({ left, top, width: FRAME_SIZE, height: FRAME_SIZE });
  }
  if (drift.blurSigma && drift.blurSigma >= 0.3) img = img.blur(drift.blurSigma);
  if (drift.dim) img = img.linear(1 - drift.dim, 0);
  return img.grayscale().png().toBuffer();
}

/**
 * The demo's fixed split of the `mnist` package's 10,000 digits: the base model trains on the
 * first 8,000, the clean holdout is the next 1,000, and the cameras are fed from the last
 * 1,000, which no model ever trains on except as labeled field samples.
 */
export const BASE_TRAIN = { offset: 0, count: 8000 } as const;
export const CLEAN_HOLDOUT = { offset: 8000, count: 1000 } as const;
export const FEED = { offset: 9000, count: 1000 } as const;

/** How the pit-3 cameras drift in the demo: tilted, out of focus and dim. */
export const PIT_DRIFT: CameraDrift = { rotateDeg: 35, blurSigma: 1.2, dim: 0.45 };
