import type { Logger } from 'pino';
import sharp from 'sharp';
import { errorLine } from '../shared/errors.js';
import type { InferResult } from '../shared/schemas/index.js';
import type { AgentConfig } from './config.js';
import type { ModelInput } from './model/runtime.js';
import type { InferContext, InferenceService } from './service.js';

export type PipelineConfig = AgentConfig['pipelines'][number];

/** The pixel rectangle a box covers, with `padding` added on each side, clamped to the image; null when too small. */
function cropRect(box: readonly [number, number, number, number], image: { width: number; height: number }, padding: number, minPx: number): { left: number; top: number; width: number; height: number } | null {
  const [x1, y1, x2, y2] = box;
  const padX = (x2 - x1) * padding;
  const padY = (y2 - y1) * padding;
  const left = Math.max(0, Math.floor(x1 - padX));
  const top = Math.max(0, Math.floor(y1 - padY));
  const right = Math.min(image.width, Math.ceil(x2 + padX));
  const bottom = Math.min(image.height, Math.ceil(y2 + padY));
  const width = right - left;
  const height = bottom - top;
  if (!(width >= minPx && height >= minPx)) return null;
  return { left, top, width, height };
}

const crop = (bytes: Uint8Array, r: NonNullable<ReturnType<typeof cropRect>>): Promise<Buffer> => sharp(bytes).extract(r).png().toBuffer();

/**
 * A detector -> classifier pipeline: the detector's boxes (best first, up to `max_boxes`, of
 * `labels` when set) are cropped from the frame and classified by the classifier slot; its
 * answer is attached to each box as `classification`. The classifier's own outlier policy
 * and telemetry see each crop, and captures keep the crop of the frame captures would keep
 * (a camera's privacy-masked one). A classifier that is not served, or fails on a crop,
 * leaves the boxes unclassified: the detector's answer never fails because of it.
 */
export async function classifyBoxes(p: PipelineConfig, classifier: InferenceService | null, input: ModelInput, result: InferResult, ctx: InferContext, log: Logger): Promise<void> {
  if (!classifier?.activeRef || input.kind !== 'image' || !result.detections?.length || !result.frame) return;
  const frame = result.frame;
  const boxes = result.detections.filter((d) => !p.labels || p.labels.includes(d.label)).slice(0, p.max_boxes);
  await Promise.all(
    boxes.map(async (d) => {
      const rect = cropRect(d.box, frame, p.padding, p.min_box_px);
      if (!rect) return;
      try {
        const bytes = await crop(input.bytes, rect);
        const captureImage = ctx.captureImage ? await crop(ctx.captureImage, rect) : undefined;
        const [c] = await classifier.infer({ kind: 'image', bytes }, { source: ctx.source, origin: ctx.origin, camera: ctx.camera, requestId: ctx.requestId, model: p.classifier, ...(captureImage ? { captureImage } : {}) });
        if (c) d.classification = { model: c.model_name, version: c.model_version, label: c.label, score: c.score };
      } catch (err) {
        log.warn({ detector: p.detector, classifier: p.classifier, box: d.box, reason: errorLine(err) }, 'classifying a box failed; the box is returned unclassified');
      }
    }),
  );
}
