import { z } from 'zod';
import type { Clock } from '../../../shared/ids.js';
import { parseWith } from '../../../shared/validate.js';
import { FleetError, FleetErrors } from '../../errors.js';
import { parseFilter } from '../samples/filter.js';
import type { SampleFilter } from '../samples/filter.js';
import type { SamplesRepo } from '../samples/repo.js';
import type { SampleRecord } from '../samples/types.js';
import type { Audit } from '../audit.js';
import { boxLabels, boxProblems, MAX_BOXES } from '../../core/labels/boxes.js';
import type { BoxAnnotation, BoxLabel, FrameSize } from '../../core/labels/boxes.js';
import type { ModelRef } from '../../../shared/schemas/index.js';

export type LabelAction = 'assign' | 'confirm' | 'skip';

/**
 * The actor of labels given by a program from ground truth rather than by a person (the demo's
 * labeler). The labeling page counts and flags them, so nobody mistakes them for human work.
 */
export const SIMULATED_LABELER = 'simulated-labeler';

/** One labeling action, kept forever (undo marks it, never deletes it). Times are ISO strings. */
export interface LabelEvent {
  id: number;
  sample_id: string;
  action: LabelAction;
  /** The label given (assign, confirm); null for skip and for box labels. */
  label: string | null;
  /** Detection samples: the boxes given (assign) or accepted (confirm). Absent for class labels and skips. */
  boxes?: BoxAnnotation;
  actor: string;
  at: string;
  undone_at: string | null;
  undone_by: string | null;
}

/** Labeling progress over a filter. */
export interface LabelProgress {
  total: number;
  labeled: number;
  skipped: number;
  unlabeled: number;
}

/** What {@link Labels.undo} reverted, and the sample's label now. */
export interface UndoResult {
  undone: LabelEvent;
  sample: SampleRecord;
}

/** What box labels need beyond the samples: the image's size and the model's classes. */
export interface BoxLabelSource {
  /** Width and height of a stored image (from its header); null when the blob is not an image the fleet reads. */
  imageSize(sha256: string): Promise<FrameSize | null>;
  /** The task and classes of a model version the registry holds; null when it holds none. */
  model(ref: ModelRef): Promise<{ task: string; labels: readonly string[] } | null>;
}

const labelText = z.string().trim().min(1, 'a label cannot be empty').max(128);
const actorText = z.string().min(1, 'actor is required').max(128);

/**
 * Human labels on stored samples. Every action is an event (who, when, what); a sample's
 * current label is its latest event that was not undone, copied onto the sample row so
 * filters and the labeling queue read it without a join. Relabeling adds an event;
 * history keeps them all.
 */
export class Labels {
  private readonly samples: SamplesRepo;
  private readonly clock: Clock;
  private readonly audit: Audit | undefined;
  private readonly boxSource: BoxLabelSource | undefined;

  /** `audit`: where each label action is recorded with its actor. `boxes`: what box labels are checked against (without it box labels are refused). */
  constructor(opts: { samples: SamplesRepo; clock: Clock; audit?: Audit; boxes?: BoxLabelSource }) {
    this.samples = opts.samples;
    this.clock = opts.clock;
    this.audit = opts.audit;
    this.boxSource = opts.boxes;
  }

  /**
   * Give a sample a label. `at` defaults to now. Throws `FLEET_SAMPLE_NOT_FOUND`, `INPUT_INVALID`,
   * `FLEET_BOXES_INVALID` for a detector's sample: it is labeled with boxes, and a class label
   * on it (a stray key press on the labeling page) would reach a detector's dataset without boxes.
   */
  assign(sampleId: string, label: string, opts: { actor: string; at?: number }): SampleRecord {
    const value = parseWith(labelText, label, 'INPUT_INVALID', 'label');
    if (isDetectionSample(this.sample(sampleId))) {
      throw new FleetError('BOXES_INVALID', `sample ${sampleId} is a detector's frame: label it with boxes (POST /v1/samples/${sampleId}/boxes, the box editor), not with a class`, { details: { sample_id: sampleId } });
    }
    return this.record(sampleId, 'assign', () => value, opts.actor, opts.at);
  }

  /** Agree with the model: the label becomes the predicted label. */
  confirm(sampleId: string, actor: string): SampleRecord {
    return this.record(sampleId, 'confirm', (predicted) => predicted, actor);
  }

  /**
   * Label a detection sample with boxes `[x1, y1, x2, y2]` in its image's pixels; an empty list
   * says there is nothing in the image. Same history, undo and audit as class labels. Throws
   * `FLEET_SAMPLE_NOT_FOUND`, `FLEET_BOXES_INVALID` (a box outside the image, x1 >= x2 or
   * y1 >= y2, a class the model does not have, more than MAX_BOXES, not a detection image).
   */
  async assignBoxes(sampleId: string, boxes: unknown, opts: { actor: string; at?: number }): Promise<SampleRecord> {
    const list = parseWith(boxLabels, boxes, FleetErrors.BOXES_INVALID, 'boxes');
    const { frame, classes } = await this.boxTarget(this.sample(sampleId));
    const problems = boxProblems(list, frame, classes);
    if (problems.length) throw new FleetError('BOXES_INVALID', `boxes do not fit sample ${sampleId}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; ${problems.length - 5} more` : ''}`, { details: { sample_id: sampleId, problems } });
    return this.record(sampleId, 'assign', () => null, opts.actor, opts.at, { frame, boxes: list });
  }

  /**
   * Agree with the model: a classifier's sample takes the predicted label, a detector's the
   * predicted boxes (clipped to the image; boxes left empty by clipping are dropped).
   */
  async confirmPrediction(sampleId: string, actor: string): Promise<SampleRecord> {
    const sample = this.sample(sampleId);
    if (!isDetectionSample(sample)) return this.confirm(sampleId, actor);
    const { frame, classes } = await this.boxTarget(sample);
    const predicted = clipToFrame(sample.meta.detections ?? [], frame).slice(0, MAX_BOXES);
    const problems = boxProblems(predicted, frame, classes);
    if (problems.length) throw new FleetError('BOXES_INVALID', `the predicted boxes of sample ${sampleId} cannot be confirmed: ${problems.slice(0, 5).join('; ')}`, { details: { sample_id: sampleId, problems } });
    return this.record(sampleId, 'confirm', () => null, actor, undefined, { frame, boxes: predicted });
  }

  /**
   * Pass on a sample (ambiguous, unreadable). It leaves the labeled set if it was in it
   * (the latest action wins) and goes to the back of the labeling queue.
   */
  skip(sampleId: string, actor: string): SampleRecord {
    return this.record(sampleId, 'skip', () => null, actor);
  }

  /**
   * Revert `actor`'s most recent action that is not undone yet (across samples); calling it
   * again walks further back. The sample's label becomes its latest remaining event. Null
   * when the actor has nothing left to undo.
   */
  undo(actor: string): UndoResult | null {
    const who = parseWith(actorText, actor, 'INPUT_INVALID', 'actor');
    const undone = this.samples.undoLast(who, this.clock.now());
    if (!undone) return null;
    this.audit?.record({ actor: who, action: 'label.undo', target: undone.sample_id, details: { undone: undone.action } });
    return { undone, sample: this.sample(undone.sample_id) };
  }

  /** Every action on a sample, oldest first, undone ones included. Throws `FLEET_SAMPLE_NOT_FOUND`. */
  history(sampleId: string): LabelEvent[] {
    const events = this.samples.history(sampleId);
    if (!events) throw notFound(sampleId);
    return events;
  }

  /** Labeled / skipped / total over the samples a filter selects. */
  progress(filter: SampleFilter = {}): LabelProgress {
    const r = this.samples.progress(parseFilter(filter));
    return { total: r.total, labeled: r.labeled, skipped: r.skipped, unlabeled: r.total - r.labeled - r.skipped };
  }

  /**
   * The labeling queue: up to `n` samples without a label matching the filter, never-seen
   * ones first, then skipped ones, each group in arrival order (stable: the same call
   * returns the same samples until someone labels).
   */
  next(filter: SampleFilter = {}, n = 20): SampleRecord[] {
    const limit = parseWith(z.number().int().positive().max(1000), n, 'INPUT_INVALID', 'n');
    return this.samples.labelingQueue(parseFilter({ ...filter, labeled: false }), limit);
  }

  /** Samples of `model` (by name) whose current label was given after `since` (ms): the learning loop's "new labels". */
  labeledSince(model: string, since: number): number {
    return this.samples.countLabeledSince(model, since);
  }

  /**
   * Per device and model version: labeled samples and how many the model got right. Samples are
   * the ones devices kept (outliers first), so this is accuracy on the hard cases, not on all traffic.
   */
  agreement(): Array<{ device_id: string; model: string; version: string; labeled: number; correct: number }> {
    return this.samples.labelAgreement();
  }

  /** Samples whose current label `actor` gave (the labeling page counts the simulated labeler's). */
  labeledBy(actor: string): number {
    return this.samples.countLabeledBy(actor);
  }

  private record(sampleId: string, action: LabelAction, labelOf: (predicted: string) => string | null, actor: string, at?: number, boxes?: BoxAnnotation): SampleRecord {
    const who = parseWith(actorText, actor, 'INPUT_INVALID', 'actor');
    const when = at ?? this.clock.now();
    if (!Number.isFinite(when)) throw new FleetError('INPUT_INVALID', 'at must be a time in milliseconds');
    const before = boxes ? this.samples.find(sampleId)?.label ?? null : null;
    if (!this.samples.addLabelEvent(sampleId, { action, labelOf, actor: who, at: when, ...(boxes ? { boxes } : {}) })) throw notFound(sampleId);
    const sample = this.sample(sampleId);
    const details = boxes
      ? { boxes: boxes.boxes.length, classes: classCounts(boxes.boxes), previous: before === null ? null : before.boxes ? { boxes: before.boxes.boxes.length, by: before.by } : { label: before.value, by: before.by } }
      : { label: sample.label?.value ?? null };
    this.audit?.record({ actor: who, action: `label.${action}`, target: sampleId, details });
    return sample;
  }

  /** Width and height of a sample's stored image (what its boxes are checked against); null when it is not an image the fleet reads, or box labels are off. */
  async imageFrame(sample: SampleRecord): Promise<FrameSize | null> {
    if (!this.boxSource || sample.meta.input.kind !== 'image') return null;
    const input = sample.meta.input;
    return (await this.boxSource.imageSize(sample.blob.sha256)) ?? (input.width && input.height ? { width: input.width, height: input.height } : null);
  }

  /** The image size and classes a sample's boxes are checked against. */
  private async boxTarget(sample: SampleRecord): Promise<{ frame: FrameSize; classes: readonly string[] }> {
    const src = this.boxSource;
    const id = sample.sample_id;
    if (!src) throw new FleetError('BOXES_INVALID', 'this fleet does not take box labels');
    const model = await src.model(sample.model);
    if (!model) throw new FleetError('BOXES_INVALID', `sample ${id} is of ${sample.model.name}@${sample.model.version}, which the registry does not hold: its classes are unknown`, { details: { sample_id: id } });
    if (model.task !== 'detection') throw new FleetError('BOXES_INVALID', `sample ${id} is of a ${model.task} model: give it a class label, not boxes`, { details: { sample_id: id } });
    const frame = await this.imageFrame(sample);
    if (!frame) throw new FleetError('BOXES_INVALID', `sample ${id} is not an image whose size the fleet can read: boxes need one`, { details: { sample_id: id } });
    return { frame, classes: model.labels };
  }

  private sample(sampleId: string): SampleRecord {
    const sample = this.samples.find(sampleId);
    if (!sample) throw notFound(sampleId);
    return sample;
  }
}

/** A detector's sample: the device sent its predicted boxes (possibly none). */
const isDetectionSample = (s: SampleRecord): boolean => s.meta.detections !== undefined;

/** Boxes clipped to the image; a box with nothing left inside is dropped. */
function clipToFrame(boxes: ReadonlyArray<{ label: string; box: readonly [number, number, number, number] }>, f: FrameSize): BoxLabel[] {
  const clamp = (v: number, hi: number): number => Math.min(hi, Math.max(0, v));
  const out: BoxLabel[] = [];
  for (const b of boxes) {
    const box: [number, number, number, number] = [clamp(b.box[0], f.width), clamp(b.box[1], f.height), clamp(b.box[2], f.width), clamp(b.box[3], f.height)];
    if (box[0] < box[2] && box[1] < box[3]) out.push({ label: b.label, box });
  }
  return out;
}

const classCounts = (boxes: readonly BoxLabel[]): Record<string, number> => {
  const c: Record<string, number> = {};
  for (const b of boxes) c[b.label] = (c[b.label] ?? 0) + 1;
  return c;
};

const notFound = (sampleId: string): FleetError => new FleetError('SAMPLE_NOT_FOUND', `sample ${sampleId} is not stored`, { details: { sample_id: sampleId } });
