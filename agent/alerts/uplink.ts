import type { Logger } from 'pino';
import sharp from 'sharp';
import { errorLine, isEdgeloopError } from '../../shared/errors.js';
import { sha256Hex } from '../../shared/ids.js';
import { CONTENT_TYPES } from '../../shared/inference/preprocess.js';
import type { AlertRecord, InferResult, SampleMeta } from '../../shared/schemas/index.js';
import type { ModelInput } from '../model/runtime.js';
import type { SampleQueue } from '../queue/types.js';
import type { InputSource } from '../service.js';
import type { Firing } from '../../shared/alerts/engine.js';
import type { AlertTarget } from './pipeline.js';

/**
 * Queue priority of an alert's frame: above every outlier (capped at 8, agent/outlier/policy.ts),
 * so alerts drain first and eviction, lowest priority first, takes every outlier before an alert.
 */
export const ALERT_PRIORITY = 9;

/** Frames being encoded at most; an alert beyond is logged and its uplink copy skipped (its actions ran). */
const MAX_ENCODING = 16;

const COLOURS = { critical: '#ff2020', warning: '#ffb000', info: '#20a0ff' } as const;

/**
 * The frame of an alert as a JPEG with the matching boxes drawn (an SVG overlay composited by
 * sharp). Without boxes a JPEG is kept byte for byte, any other image is converted.
 */
export async function annotateFrame(bytes: Uint8Array, record: Pick<AlertRecord, 'detections' | 'severity'>): Promise<{ jpeg: Buffer; width: number; height: number }> {
  const img = sharp(bytes, { failOn: 'error' }).rotate();
  const meta = await img.metadata();
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  const boxes = record.detections.filter((d) => d.box);
  if (boxes.length === 0 && meta.format === 'jpeg' && (meta.orientation ?? 1) === 1) return { jpeg: Buffer.from(bytes), width, height };
  if (boxes.length === 0) return { jpeg: await img.jpeg({ quality: 85 }).toBuffer(), width, height };
  const stroke = Math.max(3, Math.round(Math.min(width, height) / 150));
  const colour = COLOURS[record.severity];
  const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const clamp = (v: number, hi: number): number => Math.max(0, Math.min(hi, v));
  const shapes = boxes.map((d) => {
    const [x1, y1, x2, y2] = d.box!;
    const x = clamp(Math.min(x1, x2), width);
    const y = clamp(Math.min(y1, y2), height);
    const w = clamp(Math.max(x1, x2), width) - x;
    const h = clamp(Math.max(y1, y2), height) - y;
    const text = `${esc(d.label.slice(0, 40))} ${Math.round(d.score * 100)}%`;
    return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="${colour}" stroke-width="${stroke}"/><text x="${x + stroke}" y="${Math.max(12, y - stroke)}" font-family="sans-serif" font-size="${Math.max(12, stroke * 6)}" fill="${colour}">${text}</text>`;
  });
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`);
  return { jpeg: await img.composite([{ input: svg, top: 0, left: 0 }]).jpeg({ quality: 85 }).toBuffer(), width, height };
}

/**
 * Every alert also goes to the fleet: a sample with reason `alert`, its frame (boxes drawn) and
 * the alert record in `meta.alert`, through the same durable store-and-forward queue as the
 * outliers but at {@link ALERT_PRIORITY}. Offline it waits on disk and drains first when the
 * link returns.
 */
export class AlertUplink implements AlertTarget {
  private encoding = 0;
  private readonly log: Logger;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly queue: SampleQueue,
    log: Logger,
  ) {
    this.log = log.child({ component: 'alerts' });
  }

  fire(f: Firing, input: ModelInput, result: InferResult, source: InputSource): void {
    if (this.encoding >= MAX_ENCODING) {
      this.log.warn({ alert: f.record.alert_id, rule: f.record.rule }, 'too many alert frames being encoded; this alert frame is not queued for the fleet (its actions ran)');
      return;
    }
    this.encoding++;
    const p = this.capture(f.record, input, result, source)
      .catch((err: unknown) => this.log.error({ alert: f.record.alert_id, code: isEdgeloopError(err) ? err.code : undefined, reason: errorLine(err) }, 'alert frame could not be queued for the fleet'))
      .finally(() => this.encoding--);
    this.pending = Promise.all([this.pending, p]);
  }

  /** Resolves when every alert handed in so far is queued (or failed). */
  idle(): Promise<unknown> {
    return this.pending;
  }

  private async capture(record: AlertRecord, input: ModelInput, result: InferResult, source: InputSource): Promise<void> {
    let blob: Buffer;
    let inputMeta: SampleMeta['input'];
    if (input.kind === 'image') {
      const { jpeg, width, height } = await annotateFrame(input.bytes, record);
      blob = jpeg;
      inputMeta = { kind: 'image', content_type: CONTENT_TYPES.jpeg!, sha256: sha256Hex(jpeg), bytes: jpeg.length, width, height };
    } else {
      const t = input.tensor;
      const values = t instanceof Float64Array ? Array.from(t) : Array.isArray(t[0]) ? (t as number[][]).flat() : (t as number[]);
      blob = Buffer.from(JSON.stringify(values));
      inputMeta = { kind: 'tensor', sha256: sha256Hex(blob), bytes: blob.length, shape: [1, values.length] };
    }
    const sampleId = record.alert_id.replace(/^alr_/, 'smp_');
    const meta: SampleMeta = {
      sample_id: sampleId,
      device_id: record.device_id,
      captured_at: record.ts,
      model: record.model,
      reasons: ['alert'],
      priority: ALERT_PRIORITY,
      prediction: { label: result.label, index: result.index, score: result.score, topk: result.topk },
      input: inputMeta,
      source,
      alert: record,
    };
    const res = await this.queue.enqueueAsync({ id: sampleId, kind: 'sample', priority: ALERT_PRIORITY, meta, blob });
    if (res.evicted.length) this.log.info({ evicted: res.evicted.length, for: sampleId }, 'queue quota reached; evicted lowest-priority oldest samples for an alert');
    if (!(res.accepted || res.duplicate)) {
      this.log.warn({ alert: record.alert_id, code: 'AGENT_QUEUE_FULL' }, 'queue full of alerts; this alert frame was not kept for the fleet');
      return;
    }
    this.log.info({ alert: record.alert_id, sample: sampleId, bytes: blob.length }, 'alert queued for the fleet');
  }
}
