import type { Logger } from 'pino';
import sharp from 'sharp';
import { errorLine } from '../../shared/errors.js';
import type { Clock, Random } from '../../shared/ids.js';
import type { AlertRecord, AlertRuleSet, InferResult, ModelRef } from '../../shared/schemas/index.js';
import type { Registry } from '../metrics.js';
import type { ModelInput } from '../model/runtime.js';
import type { InputSource } from '../service.js';
import { CameraStateAlerts } from '../../shared/alerts/camera-states.js';
import { AlertEngine, type Firing } from '../../shared/alerts/engine.js';
import type { CameraStateChange } from '../inputs/camera.js';

/** The part of a request's context the rules read. */
export interface AlertContext {
  source: InputSource;
  camera?: string | undefined;
}

/** Where fired alerts go: the actions and the uplink copy (agent/alerts/actions.ts, uplink.ts). */
export interface AlertTarget {
  /** Take the alert and return at once (the work is the target's, bounded by it). */
  fire(firing: Firing, input: ModelInput, result: InferResult, source: InputSource): void;
}

let placeholder: Promise<Buffer> | null = null;
/** A grey frame for an alert of a camera that never sent a picture (the fleet stores every alert with a frame). */
const noPicture = (): Promise<Buffer> => (placeholder ??= sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 64, g: 64, b: 64 } } }).jpeg().toBuffer());

/** Frames waiting for evaluation at most; beyond, frames are skipped (and counted) rather than held. */
const MAX_PENDING = 256;

/**
 * Runs the rules on every result, off the request's critical path: the caller has its answer
 * before the rules run (one `setImmediate` later), and evaluations run one after another in
 * arrival order, so tracks and holds see frames in order. Reading the frame size from the
 * image header (only for zone rules on results that do not carry it) is the one asynchronous step.
 */
export class AlertPipeline {
  engine: AlertEngine;
  private cameraStates: CameraStateAlerts;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private readonly log: Logger;
  private readonly m;
  private readonly listeners: Array<(r: AlertRecord) => void> = [];
  private readonly deps: { deviceId: string; clock: Clock; random: Random };

  constructor(
    set: Readonly<AlertRuleSet>,
    deps: { deviceId: string; clock: Clock; random: Random; log: Logger; metrics: Registry },
    private targets: AlertTarget[],
  ) {
    this.engine = new AlertEngine(set.rules, deps.deviceId, deps.clock, deps.random);
    this.cameraStates = new CameraStateAlerts(set.camera_states, deps.deviceId, deps.clock, deps.random);
    this.deps = deps;
    this.log = deps.log.child({ component: 'alerts' });
    this.m = {
      raised: deps.metrics.counter('edgeloop_alerts_total', 'Alerts raised, by rule and severity'),
      skipped: deps.metrics.counter('edgeloop_alert_frames_skipped_total', 'Frames not evaluated because too many were waiting'),
    };
    this.log.info({ rules: set.rules.length, actions: Object.keys(set.actions).length }, 'alert rules loaded');
  }

  /**
   * Swap in another rule set and its targets between two evaluations: frames handed in before
   * are evaluated by the old rules, frames after by the new ones, never a mix. Tracks, holds
   * and cooldowns start over (a rule of the new set is a new rule).
   */
  replace(set: Readonly<AlertRuleSet>, targets: AlertTarget[]): Promise<void> {
    const swap = this.chain.then(() => {
      this.engine = new AlertEngine(set.rules, this.deps.deviceId, this.deps.clock, this.deps.random);
      this.cameraStates = new CameraStateAlerts(set.camera_states, this.deps.deviceId, this.deps.clock, this.deps.random);
      this.targets = targets;
      this.log.info({ rules: set.rules.length, actions: Object.keys(set.actions).length }, 'alert rules loaded');
    });
    // A swap that fails is the caller's to handle; the frames after it (and idle()) go on with the old rules.
    this.chain = swap.catch(() => undefined);
    return swap;
  }

  /** Hear every alert raised (tests, the local API). */
  onAlert(fn: (r: AlertRecord) => void): void {
    this.listeners.push(fn);
  }

  /** A result of `input` that arrived at `arrivedAt` (ms); returns at once. */
  onResult(result: InferResult, input: ModelInput, ctx: AlertContext, arrivedAt: number): void {
    if (!this.engine.watches(result.model_name)) return;
    if (this.pending >= MAX_PENDING) {
      this.m.skipped.inc();
      return;
    }
    this.pending++;
    this.chain = this.chain
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => this.evaluate(result, input, ctx, arrivedAt))
      .catch((err: unknown) => this.log.error({ reason: errorLine(err) }, 'alert evaluation failed'))
      .finally(() => this.pending--);
  }

  /**
   * A camera went offline, froze or came back: the rule set's `camera_states` decide whether
   * that is an alert (rule `camera_offline` / `camera_frozen`, or its `resolved` one), which
   * goes through the same actions and uplink as a rule's, with the camera's last (masked) picture
   * as its frame, or a grey placeholder when it never sent one. In order with the frames.
   */
  onCameraState(change: CameraStateChange, at: number, model: ModelRef | null, picture: Buffer | undefined): void {
    this.chain = this.chain
      .then(async () => {
        if (!this.cameraStates.enabled) return;
        const firings = this.cameraStates.observe({ camera: change.camera, state: change.state, previous: change.previous, ts: at, model: model ?? { name: 'camera', version: '0.0.0' } });
        if (firings.length === 0) return;
        const bytes = picture ?? (await noPicture());
        for (const f of firings) {
          const r = f.record;
          this.m.raised.inc({ rule: r.rule, severity: r.severity });
          this.log.warn({ alert: r.alert_id, rule: r.rule, severity: r.severity, camera: r.camera, resolved: f.resolved, reason: change.error?.code, actions: f.rule.actions }, f.resolved ? 'camera alert resolved' : 'alert raised');
          const result: InferResult = { type: 'infer_result', v: 1, label: r.label, index: -1, score: 1, topk: [], model_name: r.model.name, model_version: r.model.version, latency_ms: 0, outlier: { captured: false, reasons: [], suppressed: [] } };
          for (const t of this.targets) t.fire(f, { kind: 'image', bytes }, result, 'camera');
          for (const fn of this.listeners) fn(r);
        }
      })
      .catch((err: unknown) => this.log.error({ reason: errorLine(err) }, 'camera state alert failed'));
  }

  /** Resolves when every frame handed in so far was evaluated. */
  idle(): Promise<void> {
    return this.chain;
  }

  private async evaluate(result: InferResult, input: ModelInput, ctx: AlertContext, arrivedAt: number): Promise<void> {
    let frame = result.frame;
    if (!frame && result.detections?.length && input.kind === 'image' && this.engine.needsFrame(result.model_name)) {
      const meta = await sharp(input.bytes).metadata();
      if (meta.width && meta.height) frame = { width: meta.width, height: meta.height };
    }
    const firings = this.engine.observe({
      model: { name: result.model_name, version: result.model_version },
      camera: ctx.camera,
      ts: arrivedAt,
      label: result.label,
      score: result.score,
      topk: result.topk,
      detections: result.detections,
      frame,
    });
    for (const f of firings) {
      const r = f.record;
      this.m.raised.inc({ rule: r.rule, severity: r.severity });
      this.log.warn({ alert: r.alert_id, rule: r.rule, severity: r.severity, camera: r.camera, label: r.label, count: r.count, actions: f.rule.actions }, 'alert raised');
      for (const t of this.targets) t.fire(f, input, result, ctx.source);
      for (const fn of this.listeners) fn(r);
    }
  }
}
