import { AlertEngine, type AlertObservation } from '../../../shared/alerts/engine.js';
import type { Clock } from '../../../shared/ids.js';
import type { AlertRuleSet } from '../../../shared/schemas/index.js';
import type { SampleRecord } from '../samples/types.js';

/** What would have fired on one stored sample. */
export interface ReplayFiring {
  rule: string;
  severity: string;
  device_id: string;
  camera: string | null;
  /** When the sample was captured (the frame the rule fired on). */
  ts: string;
  sample_id: string;
  label: string;
  count: number;
}

export interface ReplayReport {
  /** Samples replayed (after the query), and how many the query matched beyond `max_samples`. */
  samples: number;
  truncated: boolean;
  /** The first {@link MAX_LISTED_FIRINGS} firings in replay order (`per_rule` counts them all). */
  firings: ReplayFiring[];
  /** Firings left out of `firings` past the first {@link MAX_LISTED_FIRINGS}. */
  firings_omitted: number;
  /** Firings per rule id, every rule of the set listed (0 when it never fired). */
  per_rule: Record<string, number>;
}

/** The camera a sample came from: its `origin` when a camera input captured it, else the alert's camera. */
function cameraOf(s: SampleRecord): string | undefined {
  if (s.meta.source === 'camera' && s.meta.origin) return s.meta.origin;
  return s.meta.alert?.camera;
}

/** A stored sample as the rules read a result: prediction, boxes, the frame size zones are relative to. */
function observationOf(s: SampleRecord): AlertObservation {
  const m = s.meta;
  const frame = m.input.kind === 'image' && m.input.width && m.input.height ? { width: m.input.width, height: m.input.height } : m.alert?.frame;
  return {
    model: s.model,
    camera: cameraOf(s),
    ts: Date.parse(s.captured_at),
    label: s.prediction.label,
    score: s.prediction.score,
    topk: s.prediction.topk,
    detections: m.detections ?? (m.alert?.detections.every((d) => d.box) ? m.alert.detections.map((d) => ({ label: d.label, score: d.score, box: d.box! })) : undefined),
    frame,
  };
}

/**
 * Replays a rule set over stored samples through the engine the agent runs (shared/alerts): one
 * engine per device (it keeps its state per model and camera, as on the device), samples in
 * capture order, so holds, dwell, de-duplication and cooldowns behave as they would have. Samples
 * are what devices chose to send (outliers, alerts), not every frame: a rule with `hold_s` sees
 * the gaps a device's capture policy left, and says so only by firing less.
 */
/** Firings listed at most: a rule set that fires on every sample answers counts, not a list that grows with the fleet. */
export const MAX_LISTED_FIRINGS = 1000;

export function replayRuleSet(set: Readonly<AlertRuleSet>, samples: readonly SampleRecord[], o: { clock: Clock; truncated?: boolean }): ReplayReport {
  const ordered = [...samples].sort((a, b) => (a.device_id < b.device_id ? -1 : a.device_id > b.device_id ? 1 : Date.parse(a.captured_at) - Date.parse(b.captured_at) || (a.sample_id < b.sample_id ? -1 : 1)));
  const engines = new Map<string, AlertEngine>();
  const firings: ReplayFiring[] = [];
  let omitted = 0;
  const perRule: Record<string, number> = Object.fromEntries(set.rules.map((r) => [r.id, 0]));
  // Ids of the would-be alerts are never shown: a fixed random keeps the replay deterministic.
  const random = (): number => 0.5;
  for (const s of ordered) {
    let engine = engines.get(s.device_id);
    if (!engine) engines.set(s.device_id, (engine = new AlertEngine(set.rules, s.device_id, o.clock, random)));
    const obs = observationOf(s);
    if (!Number.isFinite(obs.ts)) continue;
    for (const f of engine.observe(obs)) {
      perRule[f.rule.id] = (perRule[f.rule.id] ?? 0) + 1;
      if (firings.length >= MAX_LISTED_FIRINGS) {
        omitted++;
        continue;
      }
      firings.push({ rule: f.rule.id, severity: f.record.severity, device_id: s.device_id, camera: obs.camera ?? null, ts: s.captured_at, sample_id: s.sample_id, label: f.record.label, count: f.record.count });
    }
  }
  return { samples: samples.length, truncated: o.truncated ?? false, firings, firings_omitted: omitted, per_rule: perRule };
}
