import { newId, type Clock, type Random } from '../ids.js';
import type { AlertRecord, AlertRule, Detection, ModelRef, TopkEntry } from '../schemas/index.js';
import { anchorOf, insidePolygon, type Box } from './geometry.js';
import { IouTracker } from './tracker.js';

/**
 * One result as the rules read it: a classification (label, score, topk) and/or detections
 * (boxes in original-image pixels) with the frame size zones are relative to.
 */
export interface AlertObservation {
  model: ModelRef;
  camera?: string | undefined;
  /** When the frame arrived (ms since the epoch). */
  ts: number;
  label?: string | undefined;
  score?: number | undefined;
  topk?: readonly TopkEntry[] | undefined;
  detections?: readonly Detection[] | undefined;
  frame?: { width: number; height: number } | undefined;
}

/** A rule that fired on an observation. */
export interface Firing {
  rule: AlertRule;
  record: AlertRecord;
}

/** An object a rule can match: a tracked detection, or one label of a classification. */
interface Candidate {
  key: string;
  track?: number;
  label: string;
  score: number;
  box?: Box;
}

interface Hold {
  since: number;
  last: number;
  reported: boolean;
}

interface RuleState {
  holds: Map<string, Hold>;
  lastFired: number | null;
}

/** Detections read per frame at most (highest scores first). */
const MAX_DETECTIONS = 1000;

/**
 * Evaluates a rule set on every result, keeping per-camera state: tracks (identity across
 * frames), how long each object has matched each rule, and when each rule last fired.
 *
 * A rule fires when at least `min_count` objects have each matched it (label, score, zone) for
 * `hold_s` (the same object: a tracked detection, or a classification label), at least one of
 * them has not been reported by this rule yet (de-duplication: an object that stays is one
 * alert, not one per frame), and `cooldown_s` has passed since the rule last fired on that
 * camera. An object that stops matching for longer than `gap_s` starts over.
 *
 * Pure apart from the state it keeps: time comes with each observation, ids from the
 * clock and random passed in.
 */
export class AlertEngine {
  private readonly trackers = new Map<string, IouTracker>();
  private readonly state = new Map<string, RuleState>();
  private readonly trackTtlMs: number;

  constructor(
    readonly rules: readonly AlertRule[],
    private readonly deviceId: string,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {
    this.trackTtlMs = Math.max(1000, ...rules.map((r) => r.gap_s * 1000));
  }

  /** Whether any rule reads results of this model (so callers skip the work otherwise). */
  watches(model: string): boolean {
    return this.rules.some((r) => r.model === model);
  }

  /** Whether a rule on this model has a zone (needs the frame size). */
  needsFrame(model: string): boolean {
    return this.rules.some((r) => r.model === model && r.zone !== undefined);
  }

  observe(o: AlertObservation): Firing[] {
    const rules = this.rules.filter((r) => r.model === o.model.name && (r.camera === undefined || r.camera === o.camera));
    if (rules.length === 0) return [];
    const stream = `${o.model.name}\u0000${o.camera ?? ''}`;
    const candidates = this.candidates(stream, o);
    const out: Firing[] = [];
    for (const rule of rules) {
      const f = this.evaluate(rule, stream, candidates, o);
      if (f) out.push(f);
    }
    return out;
  }

  private candidates(stream: string, o: AlertObservation): Candidate[] {
    const out: Candidate[] = [];
    if (o.detections) {
      let tracker = this.trackers.get(stream);
      if (!tracker) this.trackers.set(stream, (tracker = new IouTracker(this.trackTtlMs)));
      const dets = o.detections.length > MAX_DETECTIONS ? [...o.detections].sort((a, b) => b.score - a.score).slice(0, MAX_DETECTIONS) : o.detections;
      for (const t of tracker.update(dets, o.ts)) out.push({ key: `t${t.track}`, track: t.track, label: t.label, score: t.score, box: t.box });
    }
    // A detector's result also carries a summary classification (its best box per label): its
    // objects are the boxes, or a person would count twice (box and label) toward min_count.
    if (o.detections) return out;
    // A classification: every label of its top k is a candidate (its identity is the label).
    const labels = o.topk && o.topk.length > 0 ? o.topk : o.label !== undefined && o.score !== undefined ? [{ label: o.label, score: o.score }] : [];
    for (const e of labels) out.push({ key: `c:${e.label}`, label: e.label, score: e.score });
    return out;
  }

  private matches(rule: AlertRule, c: Candidate, o: AlertObservation): boolean {
    if (rule.labels && !rule.labels.includes(c.label)) return false;
    if (c.score < rule.min_score) return false;
    if (rule.zone) {
      // A zone needs a box and the frame it is relative to: a classification never matches one.
      if (!c.box || !o.frame || o.frame.width <= 0 || o.frame.height <= 0) return false;
      return insidePolygon(anchorOf(c.box, o.frame, rule.zone.anchor), rule.zone.polygon);
    }
    return true;
  }

  private evaluate(rule: AlertRule, stream: string, candidates: readonly Candidate[], o: AlertObservation): Firing | null {
    const key = `${rule.id}\u0000${stream}`;
    let st = this.state.get(key);
    if (!st) this.state.set(key, (st = { holds: new Map(), lastFired: null }));
    const gapMs = rule.gap_s * 1000;
    const now = o.ts;
    const matching = candidates.filter((c) => this.matches(rule, c, o));
    for (const c of matching) {
      let h = st.holds.get(c.key);
      if (!h || now - h.last > gapMs) st.holds.set(c.key, (h = { since: now, last: now, reported: false }));
      h.last = now;
    }
    for (const [k, h] of st.holds) if (now - h.last > gapMs) st.holds.delete(k);
    const held = [...st.holds.values()].filter((h) => now - h.since >= rule.hold_s * 1000);
    if (held.length < rule.min_count || !held.some((h) => !h.reported)) return null;
    if (st.lastFired !== null && now - st.lastFired < rule.cooldown_s * 1000) return null;
    for (const h of held) h.reported = true;
    st.lastFired = now;
    const shown = matching.filter((c) => {
      const h = st.holds.get(c.key);
      return h !== undefined && now - h.since >= rule.hold_s * 1000;
    });
    const first = shown[0] ?? matching[0];
    return {
      rule,
      record: {
        alert_id: newId('alr', this.clock, this.random),
        rule: rule.id,
        severity: rule.severity,
        device_id: this.deviceId,
        ...(o.camera !== undefined ? { camera: o.camera } : {}),
        model: o.model,
        ts: new Date(now).toISOString(),
        label: first?.label ?? '',
        score: first?.score ?? 0,
        count: held.length,
        detections: shown.slice(0, 1000).map((c) => ({ label: c.label, score: c.score, ...(c.box ? { box: [...c.box] as [number, number, number, number] } : {}), ...(c.track !== undefined ? { track: c.track } : {}) })),
        ...(o.frame ? { frame: { width: Math.round(o.frame.width), height: Math.round(o.frame.height) } } : {}),
      },
    };
  }
}
