/**
 * Camera input: one {@link Camera} per `inputs.cameras` entry reads frames (ffmpeg, or
 * snapshot polling), hides the privacy zones and hands frames to inference.
 *
 * Latest frame wins: at most one frame waits while inference runs; a newer frame replaces it
 * and the older one is counted as dropped. Nothing queues up when the model is slower than
 * the camera, so memory stays bounded whatever the camera sends.
 *
 * A source that ends (ffmpeg exits, a snapshot fails) or stalls (no frame within
 * `stall_timeout_s`, the watchdog) is restarted with exponential backoff and jitter; identical
 * frames for `frozen_after_s` (a SHA-1 of the JPEG: ffmpeg re-encodes an unchanged picture to
 * the same bytes) report the camera frozen.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock, Random } from '../../shared/ids.js';
import { EdgeloopError } from '../../shared/errors.js';
import type { InferResult, Telemetry } from '../../shared/schemas/index.js';
import { AgentErrors, type AgentErrorCode } from '../errors.js';
import type { ModelInput } from '../model/runtime.js';
import type { InferContext } from '../service.js';
import { cameraKind, redactText, redactUrl, urlSecrets, type CameraConfig } from './camera-config.js';
import { checkFfmpeg, startFfmpeg, type FrameSource } from './camera-ffmpeg.js';
import { PrivacyMask } from './camera-privacy.js';
import { startSnapshots } from './camera-snapshot.js';

export type CameraTelemetry = NonNullable<Telemetry['cameras']>[number];
export type CameraState = CameraTelemetry['state'];

export interface CameraDeps {
  infer: (input: ModelInput, ctx: InferContext) => Promise<InferResult[]>;
  /** Names of the models served now; frames of a camera bound to a model not among them are skipped (counted). */
  models: () => readonly string[];
  ffmpegPath: string;
  log: Logger;
  clock: Clock;
  random: Random;
  /**
   * Called on every state change (online, offline, frozen), with the problem behind it: the
   * hook for camera-offline and frozen-picture alerts.
   */
  onState?: ((change: CameraStateChange) => void) | undefined;
}

export interface CameraStateChange {
  camera: string;
  state: CameraState;
  previous: CameraState;
  /** `AGENT_CAMERA_UNREACHABLE` / `AGENT_CAMERA_FROZEN` and a redacted message, for offline and frozen. */
  error?: { code: string; message: string } | undefined;
}

interface Counts {
  frames_in: number;
  frames_dropped: number;
  frames_processed: number;
  frames_skipped: number;
  reconnects: number;
}

const zero = (): Counts => ({ frames_in: 0, frames_dropped: 0, frames_processed: 0, frames_skipped: 0, reconnects: 0 });

export class Camera {
  readonly name: string;
  private readonly log: Logger;
  private readonly mask: PrivacyMask | null;
  private readonly secrets: string[];
  private source: FrameSource | null = null;
  private generation = 0;
  private running = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private failures = 0;
  private lastFrameAt = 0;
  private connectedAt = 0;
  private gotFrame = false;
  private pending: Buffer | null = null;
  private busy = false;
  private idle: Promise<void> = Promise.resolve();
  private lastHash = '';
  private sameSince = 0;
  private frozen = false;
  private lastError: { code: string; message: string } | undefined;
  private lastInferCode = '';
  /** The last frame handed to inference, masked: what a camera-state alert shows. */
  private lastPicture: Buffer | undefined;
  private window = zero();
  /** Totals since start (the window's counts are reset by telemetry). */
  readonly totals = zero();
  state: CameraState = 'offline';

  constructor(
    readonly config: Readonly<CameraConfig>,
    private readonly deps: CameraDeps,
  ) {
    this.name = config.name;
    this.log = deps.log.child({ component: 'camera', camera: config.name });
    this.mask = config.privacy ? new PrivacyMask(config.privacy) : null;
    this.secrets = urlSecrets(config.url);
  }

  /** The last frame handed to inference, privacy zones hidden (the frozen picture, or the last before the camera went offline); undefined before the first. */
  get picture(): Buffer | undefined {
    return this.lastPicture;
  }

  /** The ffmpeg child's process id while one runs (benchmarks read its CPU time). */
  get sourcePid(): number | undefined {
    return this.source?.pid;
  }

  /** The URL as it may appear anywhere outside this process: without user and password. */
  get safeUrl(): string {
    return redactUrl(this.config.url);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.log.info({ url: this.safeUrl, kind: cameraKind(this.config), fps: this.config.fps, privacy_zones: this.config.privacy?.zones.length ?? 0 }, 'camera starting');
    this.connect();
    const every = Math.max(50, Math.min(1000, (this.config.stall_timeout_s * 1000) / 4));
    this.watchdog = setInterval(() => this.checkStall(), every);
    this.watchdog.unref();
  }

  /** Stop reading; resolves once the frame in inference (if any) is done. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.watchdog) clearInterval(this.watchdog);
    this.reconnectTimer = null;
    this.watchdog = null;
    this.generation++;
    this.source?.stop();
    this.source = null;
    this.pending = null;
    await this.idle;
  }

  private connect(): void {
    if (!this.running) return;
    const gen = ++this.generation;
    this.gotFrame = false;
    this.connectedAt = this.deps.clock.now();
    const sink = {
      onFrame: (jpeg: Buffer) => {
        if (gen === this.generation) this.onFrame(jpeg);
      },
      onEnd: (reason: string) => {
        if (gen === this.generation) this.onEnd(reason);
      },
    };
    const c = this.config;
    const kind = cameraKind(c);
    this.source =
      kind === 'snapshot'
        ? startSnapshots({ url: c.url, fps: c.fps, timeoutMs: c.timeout_ms, maxFrameBytes: c.max_frame_bytes }, sink)
        : startFfmpeg(this.deps.ffmpegPath, { kind, url: c.url, fps: c.fps, timeoutMs: c.timeout_ms }, c.max_frame_bytes, sink);
  }

  /** The source ended on its own: offline, and a reconnect after the backoff delay. */
  private onEnd(reason: string): void {
    this.source = null;
    this.restart(reason);
  }

  private restart(reason: string): void {
    if (!this.running) return;
    this.generation++;
    this.failures++;
    const wasOnline = this.state !== 'offline';
    this.problem('CAMERA_UNREACHABLE', reason);
    this.setState('offline');
    const c = this.config;
    const cap = Math.min(c.backoff_max_ms, c.backoff_initial_ms * 2 ** Math.min(20, this.failures - 1));
    // Jitter in [cap/2, cap): cameras that failed together do not all return at once.
    const delay = Math.round(cap / 2 + (this.deps.random() * cap) / 2);
    const line = { code: AgentErrors.CAMERA_UNREACHABLE.code, reason, retry_in_ms: delay, failures: this.failures };
    if (wasOnline || this.failures === 1) this.log.warn(line, 'camera unreachable; reconnecting');
    else this.log.debug(line, 'camera still unreachable');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.count('reconnects');
      this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Watchdog: a stream that sends nothing for `stall_timeout_s` is restarted. */
  private checkStall(): void {
    if (!this.source) return;
    const since = this.gotFrame ? this.lastFrameAt : this.connectedAt;
    const silentMs = this.deps.clock.now() - since;
    // A slow camera (a snapshot every 20 s) is not stalled between its frames: three periods at least.
    if (silentMs < Math.max(this.config.stall_timeout_s * 1000, 3000 / this.config.fps)) return;
    const src = this.source;
    this.source = null;
    this.generation++;
    src.stop();
    this.restart(`no frame for ${Math.round(silentMs / 100) / 10} s (stall_timeout_s ${this.config.stall_timeout_s})`);
  }

  private onFrame(jpeg: Buffer): void {
    const now = this.deps.clock.now();
    this.lastFrameAt = now;
    this.count('frames_in');
    if (!this.gotFrame) {
      this.gotFrame = true;
      this.failures = 0;
      if (!this.frozen) this.lastError = undefined;
      this.log.info({ url: this.safeUrl }, 'camera online');
    }
    this.checkFrozen(jpeg, now);
    if (this.state === 'offline') this.setState(this.frozen ? 'frozen' : 'online');
    if (this.pending) this.count('frames_dropped');
    this.pending = jpeg;
    this.pump();
  }

  private checkFrozen(jpeg: Buffer, now: number): void {
    const hash = createHash('sha1').update(jpeg).digest('hex');
    if (hash !== this.lastHash) {
      this.lastHash = hash;
      this.sameSince = now;
      if (this.frozen) {
        this.frozen = false;
        this.lastError = undefined;
        this.setState('online');
        this.log.info('camera picture moves again');
      }
      return;
    }
    if (!this.frozen && now - this.sameSince >= this.config.frozen_after_s * 1000) {
      this.frozen = true;
      const message = `identical frames for ${Math.round((now - this.sameSince) / 1000)} s`;
      this.problem('CAMERA_FROZEN', message);
      this.setState('frozen');
      this.log.warn({ code: AgentErrors.CAMERA_FROZEN.code, reason: message }, 'camera picture frozen');
    }
  }

  /** Take the waiting frame into inference unless one is there already. */
  private pump(): void {
    if (this.busy || !this.pending) return;
    const frame = this.pending;
    this.pending = null;
    this.busy = true;
    this.idle = this.process(frame).finally(() => {
      this.busy = false;
      if (this.running) this.pump();
    });
  }

  private async process(frame: Buffer): Promise<void> {
    const want = this.config.model;
    if (want !== undefined && !this.deps.models().includes(want)) {
      this.count('frames_skipped');
      const serving = this.deps.models();
      this.noteInferError(AgentErrors.MODEL_NOT_LOADED.code, `camera feeds model ${want}, which is not served here (${serving.length ? serving.join(', ') : 'no model'})`);
      return;
    }
    let masked: Buffer = frame;
    if (this.mask) {
      try {
        masked = await this.mask.apply(frame);
      } catch (err) {
        // Never pass on a frame whose zones could not be hidden.
        this.count('frames_skipped');
        this.noteInferError(AgentErrors.CAMERA_FRAME_INVALID.code, `privacy mask failed: ${(err as Error).message}`);
        return;
      }
    }
    const full = this.config.privacy?.model_sees === 'full';
    this.lastPicture = masked;
    try {
      await this.deps.infer({ kind: 'image', bytes: full ? frame : masked }, { source: 'camera', origin: this.name, camera: this.name, captureImage: masked, ...(want !== undefined ? { model: want } : {}) });
      this.count('frames_processed');
      this.lastInferCode = '';
    } catch (err) {
      const code = err instanceof EdgeloopError ? err.code : 'ERROR';
      if (code === AgentErrors.MODEL_NOT_LOADED.code) this.count('frames_skipped');
      this.noteInferError(code, redactText(err instanceof Error ? err.message : String(err), this.secrets));
    }
  }

  /** One log line per change of inference outcome, not one per frame. */
  private noteInferError(code: string, message: string): void {
    if (code === this.lastInferCode) return;
    this.lastInferCode = code;
    this.log.warn({ code, reason: message }, 'camera frame not inferred');
  }

  private problem(code: AgentErrorCode, message: string): void {
    this.lastError = { code: AgentErrors[code].code, message: redactText(message, this.secrets).slice(0, 512) };
  }

  private setState(s: CameraState): void {
    if (s === this.state) return;
    const previous = this.state;
    this.state = s;
    try {
      this.deps.onState?.({ camera: this.name, state: s, previous, ...(s !== 'online' && this.lastError ? { error: this.lastError } : {}) });
    } catch (err) {
      this.log.error({ err }, 'camera state listener failed');
    }
  }

  private count(k: keyof Counts): void {
    this.window[k]++;
    this.totals[k]++;
  }

  /** State now and the counts since the last call (the telemetry window). */
  takeTelemetry(): CameraTelemetry {
    const w = this.window;
    this.window = zero();
    return { name: this.name, state: this.state, ...w, ...(this.lastError ? { error: this.lastError } : {}) };
  }

  /** For `/healthz`: state and totals, without resetting anything. */
  health(): Record<string, unknown> {
    return { name: this.name, url: this.safeUrl, state: this.state, ...this.totals, ...(this.lastError ? { error: this.lastError } : {}) };
  }
}

/** Every configured camera; started after the model so the first frames find it. */
export class CameraInputs {
  readonly cameras: Camera[];
  private readonly listeners = new Set<(change: CameraStateChange) => void>();

  constructor(
    configs: readonly Readonly<CameraConfig>[],
    private readonly ffmpegPath: string,
    deps: Omit<CameraDeps, 'ffmpegPath' | 'onState'>,
  ) {
    const onState = (change: CameraStateChange): void => {
      for (const l of this.listeners) l(change);
    };
    this.cameras = configs.map((c) => new Camera(c, { ...deps, ffmpegPath, onState }));
  }

  /** Listen to camera state changes (offline, frozen, online again); returns the unsubscribe. */
  onState(listener: (change: CameraStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Checks the ffmpeg prerequisite (throws `AGENT_CAMERA_FFMPEG_MISSING`), then starts every camera. */
  async start(): Promise<void> {
    if (this.cameras.some((c) => cameraKind(c.config) !== 'snapshot')) await checkFfmpeg(this.ffmpegPath);
    for (const c of this.cameras) c.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.cameras.map((c) => c.stop()));
  }

  takeTelemetry(): CameraTelemetry[] {
    return this.cameras.map((c) => c.takeTelemetry());
  }

  health(): Array<Record<string, unknown>> {
    return this.cameras.map((c) => c.health());
  }
}
