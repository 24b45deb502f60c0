import { z } from 'zod';
import type { Clock } from '../../../shared/ids.js';
import { parseWith } from '../../../shared/validate.js';
import { FleetError } from '../../errors.js';
import { parseFilter } from '../samples/filter.js';
import type { SampleFilter } from '../samples/filter.js';
import type { SamplesRepo } from '../samples/repo.js';
import type { SampleRecord } from '../samples/types.js';
import type { Audit } from '../audit.js';

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
  /** The label given (assign, confirm); null for skip. */
  label: string | null;
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

  /** `audit`: where each label action is recorded with its actor. */
  constructor(opts: { samples: SamplesRepo; clock: Clock; audit?: Audit }) {
    this.samples = opts.samples;
    this.clock = opts.clock;
    this.audit = opts.audit;
  }

  /** Give a sample a label. `at` defaults to now. Throws `FLEET_SAMPLE_NOT_FOUND`, `INPUT_INVALID`. */
  assign(sampleId: string, label: string, opts: { actor: string; at?: number }): SampleRecord {
    const value = parseWith(labelText, label, 'INPUT_INVALID', 'label');
    return this.record(sampleId, 'assign', () => value, opts.actor, opts.at);
  }

  /** Agree with the model: the label becomes the predicted label. */
  confirm(sampleId: string, actor: string): SampleRecord {
    return this.record(sampleId, 'confirm', (predicted) => predicted, actor);
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

  private record(sampleId: string, action: LabelAction, labelOf: (predicted: string) => string | null, actor: string, at?: number): SampleRecord {
    const who = parseWith(actorText, actor, 'INPUT_INVALID', 'actor');
    const when = at ?? this.clock.now();
    if (!Number.isFinite(when)) throw new FleetError('INPUT_INVALID', 'at must be a time in milliseconds');
    if (!this.samples.addLabelEvent(sampleId, { action, labelOf, actor: who, at: when })) throw notFound(sampleId);
    const sample = this.sample(sampleId);
    this.audit?.record({ actor: who, action: `label.${action}`, target: sampleId, details: { label: sample.label?.value ?? null } });
    return sample;
  }

  private sample(sampleId: string): SampleRecord {
    const sample = this.samples.find(sampleId);
    if (!sample) throw notFound(sampleId);
    return sample;
  }
}

const notFound = (sampleId: string): FleetError => new FleetError('SAMPLE_NOT_FOUND', `sample ${sampleId} is not stored`, { details: { sample_id: sampleId } });
