import type { Logger } from 'pino';
import { errorLine, isEdgeloopError } from '../../shared/errors.js';
import { modelRefString, type DesiredState, type DeviceStatus, type ModelRef } from '../../shared/schemas/index.js';
import type { ModelRuntime } from '../model/runtime.js';
import type { PackageSource } from '../model/store.js';
import { httpPackageSource } from './http-source.js';

type Deployment = NonNullable<DeviceStatus['deployment']>;

/** What the controller needs from the agent (kept narrow so tests can drive it). */
export interface DeployTarget {
  activeRef(): ModelRef | null;
  previousRef(): ModelRef | null;
  appliedRevision(): number;
  recordRevision(revision: number): Promise<void>;
  isInstalled(ref: ModelRef): Promise<boolean>;
  /** Install (if needed) and switch to the package; rejects and keeps the old model on failure. */
  install(source: PackageSource, onPhase?: (phase: 'verifying' | 'staged') => void): Promise<ModelRef>;
  /** Switch to an installed version (rollback to last-known-good needs no download). */
  activateInstalled(ref: ModelRef): Promise<ModelRef>;
  /** Install without switching, load and smoke-test: a runtime for shadow mode. */
  prepareShadow(source: PackageSource | ModelRef): Promise<ModelRuntime>;
  setShadow(runtime: ModelRuntime | null, sampleRate: number): void;
  shadowRef(): ModelRef | null;
  report(deployment: Deployment): void;
}

const same = (a: ModelRef | null | undefined, b: ModelRef | null | undefined): boolean => !!a && !!b && a.name === b.name && a.version === b.version;

/**
 * Applies the fleet's desired state (retained per device on MQTT): download the package
 * over HTTP (resumable, pinned manifest hash), verify, stage, smoke-test, switch; or start a
 * shadow run; or go back to an installed version. Every transition is reported in the
 * device status (downloading, verifying, staged, shadow, active, failed with reason,
 * rolled_back). Desired states are applied one at a time; a newer one that arrives during
 * an install is applied next (older ones are skipped). A stale retained message (revision
 * not newer than the last applied) is ignored, so a reconnect never re-runs an old install.
 */
export class DeploymentController {
  private running: Promise<void> | null = null;
  private next: DesiredState | null = null;
  private stopped = false;

  constructor(
    private readonly deviceId: string,
    private readonly target: DeployTarget,
    private readonly log: Logger,
    private readonly token?: string,
  ) {}

  submit(d: DesiredState): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (d.revision <= this.target.appliedRevision() && !this.running) return Promise.resolve();
    if (this.next === null || d.revision > this.next.revision) this.next = d;
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /**
   * The agent is stopping: no new desired state is taken, and one in flight ends without a
   * report (a step the stop interrupted is not a failure of the model) and without recording
   * its revision, so the retained desired state applies again after the restart. Resolves once
   * nothing is in flight.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.next = null;
    await this.running?.catch(() => undefined);
  }

  private async drain(): Promise<void> {
    while (this.next && !this.stopped) {
      const d = this.next;
      this.next = null;
      if (d.revision <= this.target.appliedRevision()) continue;
      await this.apply(d);
    }
  }

  private source(ref: { base_url: string; manifest_sha256: string; urls?: Record<string, string> | undefined }): PackageSource {
    return httpPackageSource({ baseUrl: ref.base_url, manifestSha256: ref.manifest_sha256, token: this.token, urls: ref.urls });
  }

  private async apply(d: DesiredState): Promise<void> {
    const base = { revision: d.revision, ...(d.rollout_id ? { rollout_id: d.rollout_id } : {}) };
    const report = (target: ModelRef, phase: Deployment['phase'], extra: { reason?: string; error_code?: string } = {}): void => this.target.report({ ...base, target, phase, ...extra });
    let interrupted = false;
    const fail = (target: ModelRef, err: unknown): void => {
      if (this.stopped) {
        interrupted = true;
        this.log.info({ model: modelRefString(target), revision: d.revision, reason: errorLine(err) }, 'deployment interrupted by the agent stopping; it applies again after the restart');
        return;
      }
      const code = isEdgeloopError(err) ? err.code : 'INTERNAL';
      this.log.error({ model: modelRefString(target), revision: d.revision, reason: errorLine(err) }, 'deployment failed; the current model keeps serving');
      report(target, 'failed', { reason: errorLine(err), error_code: code });
    };

    // Shadow first: it never changes what callers get, and a failing shadow must not block the active change.
    if (d.shadow) {
      const sh = d.shadow;
      if (!same(this.target.shadowRef(), sh.model)) {
        try {
          report(sh.model, 'downloading');
          const runtime = await this.target.prepareShadow((await this.target.isInstalled(sh.model)) ? sh.model : this.source(sh));
          this.target.setShadow(runtime, sh.sample_rate);
          report(sh.model, 'shadow');
        } catch (err) {
          fail(sh.model, err);
        }
      }
    } else if (this.target.shadowRef()) {
      this.target.setShadow(null, 0);
    }

    const want = d.active;
    if (want && !same(this.target.activeRef(), want.model)) {
      const goingBack = same(this.target.previousRef(), want.model);
      try {
        if (await this.target.isInstalled(want.model)) {
          report(want.model, 'verifying');
          await this.target.activateInstalled(want.model);
        } else {
          report(want.model, 'downloading');
          await this.target.install(this.source(want), (phase) => report(want.model, phase));
        }
        report(want.model, goingBack ? 'rolled_back' : 'active');
      } catch (err) {
        fail(want.model, err);
      }
    } else if (want && !d.shadow) {
      report(want.model, 'active');
    }
    if (interrupted) return;
    await this.target.recordRevision(d.revision).catch((err: unknown) => this.log.error({ reason: errorLine(err) }, 'cannot record the applied revision'));
  }
}

