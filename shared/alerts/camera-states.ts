import { newId, type Clock, type Random } from '../ids.js';
import type { AlertRecord, AlertRule, AlertRuleSet, CameraStateAlert, ModelRef } from '../schemas/index.js';

/** A camera state change as the camera input reports it. */
export interface CameraStateEvent {
  camera: string;
  state: 'online' | 'offline' | 'frozen';
  previous: 'online' | 'offline' | 'frozen';
  /** When it changed (ms since the epoch). */
  ts: number;
  /** The model the camera feeds (or the one serving), named in the alert record. */
  model: ModelRef;
}

/** An alert a camera state raised, shaped like a rule's firing so the same actions and uplink take it. */
export interface CameraStateFiring {
  rule: AlertRule;
  record: AlertRecord;
  kind: 'offline' | 'frozen';
  resolved: boolean;
}

type Kind = 'offline' | 'frozen';

/** The rule ids of camera-state alerts, in records, topics and the fleet. */
const CAMERA_STATE_RULES: Record<Kind, string> = { offline: 'camera_offline', frozen: 'camera_frozen' };

/**
 * Camera offline and frozen-picture alerts: a camera entering a state its rule set watches
 * (`camera_states.offline` / `.frozen`) raises one alert, at most once per `cooldown_s` per
 * camera (a flapping link is one alert), and, when it raised one, a `resolved` alert (severity
 * info) when the camera is online again. Pure apart from the state it keeps; time comes with
 * each event, ids from the clock and random passed in.
 */
export class CameraStateAlerts {
  private readonly lastRaised = new Map<string, number>();
  /** Alerts raised and not yet resolved, by camera and kind. */
  private readonly open = new Set<string>();

  constructor(
    private readonly states: Readonly<AlertRuleSet['camera_states']>,
    private readonly deviceId: string,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  /** Whether any camera-state alert is configured. */
  get enabled(): boolean {
    return this.states.offline !== undefined || this.states.frozen !== undefined;
  }

  observe(e: CameraStateEvent): CameraStateFiring[] {
    const out: CameraStateFiring[] = [];
    if (e.state === 'online') {
      for (const kind of ['offline', 'frozen'] as const) {
        const key = `${kind}\u0000${e.camera}`;
        if (!this.open.delete(key)) continue;
        const cfg = this.states[kind];
        if (cfg?.resolved) out.push(this.firing(kind, cfg, e, true));
      }
      return out;
    }
    const kind: Kind = e.state;
    const cfg = this.states[kind];
    if (!cfg || (cfg.cameras && !cfg.cameras.includes(e.camera))) return out;
    const key = `${kind}\u0000${e.camera}`;
    const last = this.lastRaised.get(key);
    if (last !== undefined && e.ts - last < cfg.cooldown_s * 1000) return out;
    this.lastRaised.set(key, e.ts);
    this.open.add(key);
    out.push(this.firing(kind, cfg, e, false));
    return out;
  }

  private firing(kind: Kind, cfg: CameraStateAlert, e: CameraStateEvent, resolved: boolean): CameraStateFiring {
    const id = CAMERA_STATE_RULES[kind];
    const severity = resolved ? 'info' : cfg.severity;
    // A rule in the shape the actions read (they need its id and action names only).
    const rule: AlertRule = { id, model: e.model.name, min_score: 0, min_count: 1, hold_s: 0, gap_s: 0, cooldown_s: cfg.cooldown_s, severity, actions: cfg.actions, camera: e.camera };
    return {
      kind,
      resolved,
      rule,
      record: {
        alert_id: newId('alr', this.clock, this.random),
        rule: id,
        severity,
        device_id: this.deviceId,
        camera: e.camera,
        model: e.model,
        ts: new Date(e.ts).toISOString(),
        label: resolved ? 'resolved' : kind,
        score: 1,
        count: 0,
        detections: [],
      },
    };
  }
}
