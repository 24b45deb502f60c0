import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorLine } from '../shared/errors.js';
import { systemClock, type Clock, type Random } from '../shared/ids.js';
import { closeHttpServer } from '../shared/http-server.js';
import { packageProblems } from '../shared/package/index.js';
import { modelName, modelRefString, type AlertRuleSet, type DesiredState, type DeviceStatus, type InferResult, type ModelRef, type ModelWindow } from '../shared/schemas/index.js';
import { topics } from '../shared/topics.js';
import { poolSettings, readFleetPublicKey, type AgentConfig } from './config.js';
import { loadRuleSet } from './alerts/load.js';
import { AlertActions, type IpcPublish } from './alerts/actions.js';
import { AlertPipeline } from './alerts/pipeline.js';
import { AlertUplink } from './alerts/uplink.js';
import { FleetRules } from './alerts/fleet-rules.js';
import { AgentError } from './errors.js';
import { CameraInputs } from './inputs/camera.js';
import { createHttpApi, listen } from './inputs/http.js';
import { LocalMqttInput } from './inputs/mqtt-input.js';
import { DirectoryWatcher } from './inputs/watch-dir.js';
import { Registry } from './metrics.js';
import type { ModelPackage } from './model/package.js';
import type { ModelInput } from './model/runtime.js';
import { directorySource, ModelStore, type PackageSource } from './model/store.js';
import { openSqliteQueue } from './queue/sqlite-queue.js';
import type { SampleQueue } from './queue/types.js';
import type { InferContext, InferenceService } from './service.js';
import { ModelSlots } from './slots.js';
import { classifyBoxes } from './pipeline.js';
import { DesiredRouter } from './deploy/router.js';
import { DrainWorker } from './uplink/drain-worker.js';
import { Forwarder } from './uplink/forwarder.js';
import { MqttUplink, type MqttTlsOptions } from './uplink/mqtt-uplink.js';
import { readUplinkTls, type UplinkTlsFiles } from './uplink/tls-files.js';
import type { Uplink } from './uplink/types.js';
import { offlineStatusWill } from './uplink/will.js';
import { AGENT_VERSION } from './version.js';
import type { DeployTarget } from './deploy/controller.js';

export interface AgentOptions {
  log: Logger;
  clock?: Clock;
  random?: Random;
  /** Use this uplink instead of building one from the config (Greengrass IPC, tests). */
  uplink?: Uplink;
  /** Greengrass local pub/sub, for `greengrass` alert actions (Greengrass mode). */
  ipcPublish?: IpcPublish;
}

/**
 * The device agent: model store + inference service + durable capture queue + inputs +
 * uplink, wired from one validated config. `start` brings everything up; `stop` shuts down
 * in the order that loses nothing (inputs first, then in-flight inference, then the queue).
 */
export class Agent {
  httpUrl: string | null = null;
  /** The alert rules in force (a fleet rule set, or the config's; possibly none). */
  alerts: AlertPipeline | null = null;
  alertActions: AlertActions | null = null;
  /** Rule sets from the fleet: checked, swapped in, kept in the data directory. */
  fleetRules: FleetRules | null = null;
  private alertUplink: AlertUplink | null = null;
  private http: Server | null = null;
  private watcher: DirectoryWatcher | null = null;
  private localMqtt: LocalMqttInput | null = null;
  private cameras: CameraInputs | null = null;
  private uplink: Uplink | null = null;
  private forwarder: Forwarder | null = null;
  private drainWorker: DrainWorker | null = null;
  private telemetryTimer: NodeJS.Timeout | null = null;
  private reclaimTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  private readonly clock: Clock;
  private switching: Promise<unknown> = Promise.resolve();
  /** The rule-set swap under way (settled when none is). */
  private rulesSwap: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private lastDeployment: DeviceStatus['deployment'] | undefined;
  /** Each model slot's latest deployment report. */
  private readonly deployments = new Map<string, NonNullable<DeviceStatus['deployment']>>();
  private installed: ModelRef[] = [];
  private deployer: DesiredRouter | null = null;
  /** Inference requests and model switches under way (a Greengrass component update waits for them). */
  private inflight = 0;
  private switches = 0;

  private constructor(
    readonly config: Readonly<AgentConfig>,
    readonly store: ModelStore,
    readonly queue: SampleQueue,
    readonly slots: ModelSlots,
    readonly metrics: Registry,
    private readonly opts: AgentOptions,
  ) {
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    this.metrics.gauge('edgeloop_queue_depth', 'Samples waiting in the store-and-forward queue', () => queue.stats().depth);
    this.metrics.gauge('edgeloop_queue_bytes', 'Bytes held by the queue', () => queue.stats().bytes);
    this.metrics.gauge('edgeloop_queue_quota_bytes', 'Queue byte quota', () => queue.stats().quotaBytes);
    this.metrics.gauge('edgeloop_queue_evicted_total', 'Samples evicted for space since the queue was created', () => queue.stats().evictedTotal);
    this.metrics.gauge('edgeloop_uplink_connected', '1 when the uplink is connected', () => (this.uplink?.isConnected() ? 1 : 0));
    this.metrics.gauge('edgeloop_uplink_acked_total', 'Samples acknowledged and deleted since start', () => this.forwarder?.stats().acked ?? 0);
    this.metrics.gauge('edgeloop_uplink_nacked_total', 'Refusals from the fleet (rate limit, quota, too large) since start; the samples stay queued', () => this.forwarder?.stats().nacked ?? 0);
  }

  /** The default model slot (the first that serves): what a request naming no model gets. */
  get service(): InferenceService {
    return this.slots.first;
  }

  static async start(config: Readonly<AgentConfig>, opts: AgentOptions): Promise<Agent> {
    const log = opts.log;
    await mkdir(config.data_dir, { recursive: true });
    const clock = opts.clock ?? systemClock;
    const publicKeyPem = readFleetPublicKey(config);
    // Before anything opens: a bad rule set stops the start with every bad key named.
    const configRules = loadRuleSet(config.alerts);
    // A fleet rule set kept from an earlier run replaces the config's (checked again first).
    let agentRef: Agent | null = null;
    const fleetRules = new FleetRules({
      deviceId: config.device_id,
      file: join(config.data_dir, 'rules', 'fleet-rule-set.json'),
      publicKeyPem: publicKeyPem ?? null,
      allowUnsigned: config.allow_unsigned,
      configRules,
      apply: (set) => (agentRef ? agentRef.swapRules(set) : Promise.reject(new AgentError('RULE_SET_REFUSED', 'the agent is not running'))),
      changed: () => agentRef?.publishStatus(),
      log,
    });
    const restored = await fleetRules.restore();
    if (restored && !Agent.buildable(restored.set, opts)) fleetRules.discardRestored('its greengrass actions need Greengrass mode');
    const ruleSet = restored && Agent.buildable(restored.set, opts) ? restored.set : configRules;
    const store = await ModelStore.open(join(config.data_dir, 'models'), { publicKeyPem, allowUnsigned: config.allow_unsigned }, log.child({ component: 'model-store' }));
    const queue = openSqliteQueue({ path: join(config.data_dir, 'queue.db'), quotaBytes: config.queue.quota_bytes, synchronous: config.queue.synchronous, clock, logger: log });
    const metrics = new Registry();
    // Always built, even without rules: a rule set from the fleet can arrive at any time.
    const actions = AlertActions.create(ruleSet, { log, deviceId: config.device_id, ipcPublish: opts.ipcPublish });
    const alertUplink = config.alerts.uplink ? new AlertUplink(queue, log) : null;
    const alerts = new AlertPipeline(ruleSet, { deviceId: config.device_id, clock, random: opts.random ?? Math.random, log, metrics }, alertUplink ? [actions, alertUplink] : [actions]);
    const slots = new ModelSlots(
      {
        alerts,
        deviceId: config.device_id,
        clock,
        random: opts.random ?? Math.random,
        log,
        metrics,
        queue,
        outlierOverrides: config.outlier,
        outlierByModel: config.outlier_by_model,
        warmupRuns: config.inference.warmup_runs,
        pool: poolSettings(config.inference),
      },
      () => store.slotNames,
    );
    const agent = new Agent(config, store, queue, slots, metrics, opts);
    agent.alerts = alerts;
    agent.alertActions = actions;
    agent.alertUplink = alertUplink;
    agent.fleetRules = fleetRules;
    agentRef = agent;
    try {
      await agent.loadInitialModel();
      agent.installed = await store.list();
      await agent.startUplink();
      await agent.startInputs();
      agent.startReclaim();
    } catch (err) {
      await agent.stop();
      throw err;
    }
    log.info({ model: agent.service.activeRef ? modelRefString(agent.service.activeRef) : null, models: agent.slots.serving().map(modelRefString), http: agent.httpUrl }, 'agent started');
    return agent;
  }

  /** Whether a rule set's actions can be built here (a `greengrass` action needs Greengrass mode). */
  private static buildable(set: Readonly<AlertRuleSet>, opts: AgentOptions): boolean {
    return Object.values(set.actions).every((a) => a.kind !== 'greengrass' || opts.ipcPublish !== undefined);
  }

  /**
   * Put another rule set in force: its actions are built first (a failure closes what was built
   * and leaves the running set untouched), the pipeline swaps rules and targets between two
   * evaluations, then the old actions finish what they were given and close. Swaps run one at a
   * time; once the agent stops a swap is refused, and the stop waits for one under way so that it
   * closes the actions that swap put in force (a site connection is never left behind).
   */
  swapRules(set: Readonly<AlertRuleSet>): Promise<void> {
    const run = this.rulesSwap.then(() => this.swapRulesNow(set));
    this.rulesSwap = run.catch(() => undefined);
    return run;
  }

  private async swapRulesNow(set: Readonly<AlertRuleSet>): Promise<void> {
    if (!this.alerts) throw new AgentError('RULE_SET_REFUSED', 'the alert pipeline is not running');
    if (this.stopping) throw new AgentError('RULE_SET_REFUSED', 'the agent is stopping');
    const actions = AlertActions.create(set, { log: this.log, deviceId: this.config.device_id, ipcPublish: this.opts.ipcPublish });
    try {
      await this.alerts.replace(set, this.alertUplink ? [actions, this.alertUplink] : [actions]);
    } catch (err) {
      await actions.close();
      throw err;
    }
    const old = this.alertActions;
    this.alertActions = actions;
    await old?.close();
  }

  /** The camera inputs (`inputs.cameras`), null when none are configured. */
  get cameraInputs(): CameraInputs | null {
    return this.cameras;
  }

  renderMetrics(): string {
    return this.metrics.render();
  }

  /**
   * Each slot's active model from the store; if it no longer loads, fall back to its previous
   * one. Then `models.initial`: one directory installs when no model serves yet; a list
   * installs each package whose model name has no serving slot (a slot the fleet moved on keeps
   * its version).
   */
  private async loadInitialModel(): Promise<void> {
    for (const name of this.store.slotNames) {
      const { active, previous } = this.store.slot(name);
      for (const ref of [active, previous]) {
        if (!ref) continue;
        try {
          await this.slots.slot(name).activate(await this.store.get(ref));
          if (ref !== active) await this.store.setActive(ref);
          break;
        } catch (err) {
          this.log.error({ model: modelRefString(ref), reason: errorLine(err) }, 'installed model does not load; trying the previous version');
        }
      }
    }
    const initial = this.config.models.initial;
    if (typeof initial === 'string') {
      if (this.slots.serving().length === 0) await this.install(directorySource(initial));
    } else if (initial) {
      const names = await initialModelNames(initial);
      for (const [i, dir] of initial.entries()) {
        if (this.slots.find(names[i]!)?.activeRef) continue;
        await this.install(directorySource(dir));
      }
    }
    if (this.slots.serving().length === 0) this.log.warn('no model installed yet; inference answers MODEL_NOT_LOADED until one is deployed');
  }

  /**
   * Install a package and switch to it: stage + verify (hashes, signature), load, warm up,
   * smoke test, then an atomic switch. Any failure leaves the current model serving.
   * Switches are serialised.
   */
  install(source: PackageSource, onPhase?: (phase: 'verifying' | 'staged') => void): Promise<ModelRef> {
    return this.serialise(async (): Promise<ModelRef> => {
      let pkg: (ModelPackage & { fresh: boolean }) | null = null;
      try {
        pkg = await this.store.install(source, () => onPhase?.('verifying'));
        onPhase?.('staged');
        await this.slots.slot(pkg.ref.name).activate(pkg);
        await this.store.setActive(pkg.ref);
        await this.store.prune(this.config.models.keep, pkg.ref.name);
      } catch (err) {
        // A version that never served is not kept: rejected packages must not fill the disk.
        if (pkg?.fresh) await this.store.remove(pkg.ref).catch(() => undefined);
        const rules = packageProblems(err)?.map((p) => p.rule);
        this.log.error({ from: source.label, model: pkg ? modelRefString(pkg.ref) : undefined, reason: errorLine(err), ...(rules ? { rules } : {}) }, 'model install rejected; the current model keeps serving');
        throw err;
      }
      this.installed = await this.store.list();
      this.publishStatus();
      return pkg.ref;
    });
  }

  /** Switch a model slot (default: the first) back to its previous version (kept on disk for this). */
  rollback(model?: string): Promise<ModelRef> {
    const name = model ?? this.service.activeRef?.name ?? this.store.slotNames[0];
    const prev = name === undefined ? null : this.store.slot(name).previous;
    if (!prev) return Promise.reject(new AgentError('MODEL_VERSION_UNKNOWN', `there is no previous version${name ? ` of ${name}` : ''} to roll back to`));
    return this.activateInstalled(prev);
  }

  /** Switch to an installed version (verified again first); serialised with installs. */
  activateInstalled(ref: ModelRef): Promise<ModelRef> {
    return this.serialise(async () => {
      await this.slots.slot(ref.name).activate(await this.store.get(ref));
      await this.store.setActive(ref);
      this.log.warn({ model: modelRefString(ref) }, 'switched to an installed version');
      this.publishStatus();
      return ref;
    });
  }

  /** Model switches run one at a time, in call order. */
  private serialise<T>(run: () => Promise<T>): Promise<T> {
    this.switches++;
    const next = this.switching.then(run, run).finally(() => this.switches--);
    this.switching = next.catch(() => undefined);
    return next;
  }

  /** Work that a restart now would cut short: inference requests in flight and model switches queued or running. */
  busy(): { inference: number; switches: number } {
    return { inference: this.inflight, switches: this.switches };
  }

  /**
   * Apply a desired state that arrived by another channel than the MQTT desired topic (the
   * Greengrass component configuration): same controller, same model store, same ordering
   * by revision. Rejects when the agent runs without an uplink (no deployment controller).
   */
  applyDesiredState(d: DesiredState): Promise<void> {
    if (!this.deployer) return Promise.reject(new AgentError('CONFIG_INVALID', 'deployments need an uplink; this agent runs without one'));
    return this.deployer.submit(d);
  }

  /** Commit pending captures and fold the queue's WAL into its database file (before a restart). */
  checkpointQueue(): void {
    this.queue.checkpoint?.();
  }

  /** A model slot as its deployment controller sees it. */
  private deployTarget(name: string): DeployTarget {
    const slot = (): InferenceService => this.slots.slot(name);
    return {
      activeRef: () => this.slots.find(name)?.activeRef ?? null,
      previousRef: () => this.store.slot(name).previous,
      appliedRevision: () => this.store.slot(name).revision,
      recordRevision: (r) => this.store.setRevision(r, name),
      isInstalled: (ref) => this.store.has(ref),
      install: (source, onPhase) => this.install(source, onPhase),
      activateInstalled: (ref) => this.activateInstalled(ref),
      prepareShadow: async (from) => slot().prepare('name' in from && 'version' in from ? await this.store.get(from as ModelRef) : await this.store.install(from as PackageSource)),
      setShadow: (runtime, rate) => slot().setShadow(runtime, rate),
      shadowRef: () => this.slots.find(name)?.shadowRef ?? null,
      report: (deployment) => {
        this.lastDeployment = deployment;
        this.deployments.set(name, deployment);
        this.publishStatus();
      },
    };
  }

  infer(input: ModelInput, ctx: InferContext): Promise<InferResult[]> {
    this.inflight++;
    let slot: InferenceService;
    try {
      slot = this.slots.route(ctx.model);
    } catch (err) {
      this.inflight--;
      return Promise.reject(err as Error);
    }
    return this.inferThrough(slot, input, ctx).finally(() => {
      this.inflight--;
      this.forwarder?.notify();
    });
  }

  /** The slot's answer, with a pipeline's classifier answers attached to the boxes (config `pipelines`). */
  private async inferThrough(slot: InferenceService, input: ModelInput, ctx: InferContext): Promise<InferResult[]> {
    const results = await slot.infer(input, ctx);
    const p = slot.activeRef ? this.config.pipelines.find((x) => x.detector === slot.activeRef!.name) : undefined;
    if (p && results.length === 1) await classifyBoxes(p, this.slots.find(p.classifier), input, results[0]!, ctx, this.log);
    return results;
  }

  status(online = true): DeviceStatus {
    const first = this.service.activeRef?.name;
    const s = first ? this.store.slot(first) : this.store.current;
    // Strictly increasing: the fleet keeps a status only when its ts is newer than the stored
    // one (an older one is a retained replay), and an install publishes twice in the same
    // millisecond (the switch, then the deployment's `active`), which left the fleet showing
    // the device stuck in `staged`.
    this.lastStatusMs = Math.max(this.clock.now(), this.lastStatusMs + 1);
    return {
      type: 'device_status',
      v: 1,
      device_id: this.config.device_id,
      ts: new Date(this.lastStatusMs).toISOString(),
      online,
      agent_version: AGENT_VERSION,
      models: { active: this.service.activeRef ?? s.active, previous: s.previous, installed: this.installed },
      ...(this.lastDeployment ? { deployment: this.lastDeployment } : {}),
      ...(this.slotNames().length ? { slots: this.slotStatus() } : {}),
      ...(this.fleetRules ? { rules: this.fleetRules.report() } : {}),
    };
  }

  /** Every model slot's name: the store's (first installed first), then any slot still installing its first version. */
  private slotNames(): string[] {
    const names = [...this.store.slotNames];
    for (const n of [...this.slots.names(), ...this.deployments.keys()]) if (!names.includes(n)) names.push(n);
    return names;
  }

  private slotStatus(): NonNullable<DeviceStatus['slots']> {
    return this.slotNames().map((name) => {
      const s = this.store.slot(name);
      const live = this.slots.find(name);
      const deployment = this.deployments.get(name);
      return {
        name,
        active: live?.activeRef ?? s.active,
        previous: s.previous,
        shadow: live?.shadowRef ?? null,
        installed: this.installed.filter((r) => r.name === name),
        ...(deployment ? { deployment } : {}),
      };
    });
  }

  /** Publish the retained status when it changed (or always, after a reconnect). */
  publishStatus(force = false): void {
    if (!this.forwarder) return;
    const status = this.status();
    const key = JSON.stringify({ ...status, ts: undefined });
    if (!force && key === this.lastStatusKey) return;
    this.lastStatusKey = key;
    this.forwarder.sendLive(topics.status(this.config.device_id), Buffer.from(JSON.stringify(status)), { retain: true });
  }

  private lastStatusKey = '';
  private lastStatusMs = 0;

  /** The uplink's TLS files, read and checked; a bad one is logged and stops the start. */
  private uplinkTls(t: UplinkTlsFiles): MqttTlsOptions {
    try {
      return readUplinkTls(t);
    } catch (err) {
      this.log.error({ code: (err as AgentError).code, reason: (err as Error).message }, 'uplink TLS files cannot be used');
      throw err;
    }
  }

  private async startUplink(): Promise<void> {
    const u = this.config.uplink;
    if (!this.opts.uplink && u.kind === 'none') return;
    this.uplink =
      this.opts.uplink ??
      new MqttUplink({
        url: u.url,
        clientId: u.client_id ?? this.config.device_id,
        logger: this.log,
        keepaliveS: u.keepalive_s,
        backoff: { initialMs: u.backoff_initial_ms, maxMs: u.backoff_max_ms },
        ...(u.username ? { username: u.username } : {}),
        ...(u.password ? { password: u.password } : {}),
        ...(u.tls ? { tls: this.uplinkTls(u.tls) } : {}),
        will: () => {
          try {
            return offlineStatusWill(this.status(false), new Date(this.clock.now()));
          } catch (err) {
            // A status that does not validate must not stop the uplink: connect without a will.
            this.log.error({ reason: errorLine(err) }, 'no last will: the device status does not validate');
            return undefined;
          }
        },
      });
    // The queue work of draining (reading rows, encoding, deleting acked rows) runs in a
    // worker thread on its own connection to the queue file; see DrainWorker.
    const q = this.config.queue;
    try {
      this.drainWorker = await DrainWorker.open({ path: join(this.config.data_dir, 'queue.db'), quotaBytes: q.quota_bytes, synchronous: q.synchronous });
    } catch (err) {
      // Draining on the event loop is slower, never less safe: keep going without the thread.
      this.log.warn({ reason: errorLine(err) }, 'drain worker did not start; draining on the main thread');
    }
    this.forwarder = new Forwarder({
      deviceId: this.config.device_id,
      queue: this.queue,
      ...(this.drainWorker ? { source: this.drainWorker } : {}),
      uplink: this.uplink,
      logger: this.log,
      ackMode: u.ack_mode,
      ackTimeoutMs: u.ack_timeout_ms,
      maxMessageBytes: u.max_message_bytes,
      limits: { maxInflight: u.max_inflight, publishesPerS: u.max_publishes_per_s, bytesPerS: u.bandwidth_bytes_per_s || null },
    });
    await this.forwarder.start();
    this.uplink.on('connected', () => this.publishStatus(true));
    this.deployer = new DesiredRouter(
      this.config.device_id,
      (name) => this.deployTarget(name),
      () => this.service.activeRef?.name ?? this.store.slotNames[0] ?? null,
      this.log.child({ component: 'deploy' }),
      this.config.fleet_token,
      () => this.slotNames(),
    );
    const deployer = this.deployer;
    // Older fleets publish one desired state per device; newer ones one per model slot.
    await this.uplink.subscribe(topics.desired(this.config.device_id), (_t, payload) => deployer.onMessage(payload));
    const slotTopic = topics.desiredModel(this.config.device_id, '');
    await this.uplink
      .subscribe(topics.desiredModels(this.config.device_id), (t, payload) => deployer.onMessage(payload, t.startsWith(slotTopic) ? t.slice(slotTopic.length) : null))
      // A Greengrass recipe older than model slots does not allow this topic: the device still
      // gets the legacy topic (and the component configuration), so it keeps working.
      .catch((err: unknown) => this.log.warn({ topic: topics.desiredModels(this.config.device_id), reason: errorLine(err) }, 'cannot subscribe to per-model desired states; only the single desired-state topic is followed'));
    const rules = this.fleetRules;
    if (rules) await this.uplink.subscribe(topics.rules(this.config.device_id), (_t, payload) => void rules.onMessage(payload));
    // Do not wait for the network: the agent must start and infer while offline.
    this.uplink.connect().catch((err: unknown) => this.log.warn({ reason: errorLine(err) }, 'uplink connect ended'));
    this.telemetryTimer = setInterval(() => this.publishTelemetry(), u.telemetry_interval_s * 1000);
    this.telemetryTimer.unref();
  }

  /**
   * Give disk back after a backlog drains: every `queue.reclaim_interval_s`, free pages go back
   * in steps of 256 pages (1 MiB), yielding between steps so captures and inference never
   * wait behind more than one. A gateway with a small disk gets its space back without a
   * stop-the-world VACUUM.
   */
  private startReclaim(): void {
    const reclaim = this.queue.reclaim?.bind(this.queue);
    if (!reclaim) return;
    const STEP_PAGES = 256;
    const WORTH_BYTES = 1024 * 1024;
    const tick = async (): Promise<void> => {
      let before = 0;
      let after = 0;
      try {
        for (let step = 0; step < 4096 && this.reclaimTimer !== null; step++) {
          const r = reclaim(STEP_PAGES);
          if (step === 0) before = r.fileBytes + r.reclaimableBytes;
          after = r.fileBytes;
          if (r.reclaimableBytes < WORTH_BYTES) break;
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch (err) {
        this.log.warn({ err }, 'giving queue disk space back failed; retried later');
      }
      if (before > after) this.log.info({ file_bytes: after, freed_bytes: before - after }, 'queue disk space given back');
      if (this.reclaimTimer !== null) this.reclaimTimer = setTimeout(() => void tick(), this.config.queue.reclaim_interval_s * 1000).unref();
    };
    this.reclaimTimer = setTimeout(() => void tick(), this.config.queue.reclaim_interval_s * 1000).unref();
  }

  publishTelemetry(): void {
    const q = this.queue.stats();
    const queue = {
      depth: q.depth,
      bytes: q.bytes,
      quota_bytes: q.quotaBytes,
      evicted_total: q.evictedTotal,
      oldest_age_s: q.oldestCreatedAt === null ? null : Math.max(0, (this.clock.now() - q.oldestCreatedAt) / 1000),
    };
    // One window per model slot; the first slot's figures stay at the top level (older fleets read those).
    const first = this.service;
    const windows = this.slots.all().filter((s) => s !== first && s.activeRef !== null);
    const take = (svc: InferenceService): ModelWindow | null => {
      const ref = svc.activeRef;
      const t = svc.window.take(this.config.device_id, ref, svc.driftReport(), queue);
      const shadow = svc.takeShadowTelemetry();
      return ref ? { model: ref, inference: t.inference, confidence_mean: t.confidence_mean, outliers: t.outliers, drift: t.drift, ...(shadow ? { shadow } : {}) } : null;
    };
    const t = first.window.take(this.config.device_id, first.activeRef, first.driftReport(), queue);
    const shadow = first.takeShadowTelemetry();
    const models = windows.length ? [{ model: first.activeRef!, inference: t.inference, confidence_mean: t.confidence_mean, outliers: t.outliers, drift: t.drift, ...(shadow ? { shadow } : {}) }, ...windows.map(take).filter((w): w is ModelWindow => w !== null)] : [];
    const degraded = this.uplink?.degraded?.() ?? null;
    const cameras = this.cameras?.takeTelemetry();
    this.forwarder?.sendLive(topics.telemetry(this.config.device_id), Buffer.from(JSON.stringify({ ...t, ...(shadow ? { shadow } : {}), ...(models.length ? { models } : {}), ...(cameras?.length ? { cameras } : {}), ...(degraded ? { uplink: { degraded } } : {}) })));
  }

  private async startInputs(): Promise<void> {
    const infer = (input: ModelInput, ctx: InferContext): Promise<InferResult[]> => this.infer(input, ctx);
    if (this.config.http.enabled) {
      const h = this.config.http;
      this.http = createHttpApi({
        infer,
        health: () => this.health(),
        metrics: () => this.renderMetrics(),
        log: this.log,
        maxBodyBytes: h.max_body_bytes,
        maxTensorValues: (model) => {
          try {
            return this.slots.route(model).activeRuntime?.maxTensorValues ?? null;
          } catch {
            return null; // an unknown model is answered 404 once the body is read
          }
        },
        largestTensorValues: () => {
          const bounds = this.slots.all().flatMap((svc) => (svc.activeRuntime ? [svc.activeRuntime.maxTensorValues] : []));
          return bounds.length ? Math.max(...bounds) : null;
        },
        ...(h.token !== undefined ? { token: h.token } : {}),
        allowedHosts: h.allowed_hosts,
      });
      this.httpUrl = (await listen(this.http, this.config.http.port, this.config.http.host)).url;
    }
    const w = this.config.watch;
    if (w.enabled) {
      this.watcher = new DirectoryWatcher(
        {
          dir: w.dir,
          resultsFile: w.results_file ?? join(w.dir, 'results.jsonl'),
          after: w.after,
          processedDir: w.processed_dir ?? join(w.dir, 'processed'),
          failedDir: w.failed_dir ?? join(w.dir, 'failed'),
          pollMs: w.poll_ms,
          extensions: [...w.extensions],
          concurrency: w.concurrency,
        },
        infer,
        this.log,
      );
      await this.watcher.start();
    }
    const lm = this.config.local_mqtt;
    if (lm.enabled) {
      this.localMqtt = new LocalMqttInput({ url: lm.url, requestTopic: lm.request_topic, resultTopic: lm.result_topic, clientId: `${this.config.device_id}-local` }, infer, this.log);
      await this.localMqtt.start();
    }
    const cams = this.config.inputs.cameras;
    if (cams.length) {
      this.cameras = new CameraInputs(cams, this.config.inputs.ffmpeg_path, {
        infer,
        models: () => this.slots.serving().map((r) => r.name),
        log: this.log,
        clock: this.clock,
        random: this.opts.random ?? Math.random,
      });
      // Camera offline / frozen alerts (the rule set's `camera_states`), in order with the frames.
      const inputs = this.cameras;
      inputs.onState((change) => this.alerts?.onCameraState(change, this.clock.now(), this.service.activeRef, inputs.cameras.find((c) => c.name === change.camera)?.picture));
      await this.cameras.start();
    }
  }

  health(): { ok: boolean; [k: string]: unknown } {
    const q = this.queue.stats();
    const active = this.service.activeRef;
    const degraded = this.uplink?.degraded?.() ?? null;
    return {
      ok: active !== null,
      // Still serving (200), but someone should look: the device cannot hear the fleet.
      status: !active ? 'no_model' : degraded ? 'degraded' : 'ok',
      device_id: this.config.device_id,
      agent_version: AGENT_VERSION,
      model: active ? { ...active, execution_provider: this.service.activeRuntime?.executionProvider } : null,
      previous: active ? this.store.slot(active.name).previous : this.store.current.previous,
      models: this.slots.all().flatMap((svc) => (svc.activeRef ? [{ ...svc.activeRef, previous: this.store.slot(svc.activeRef.name).previous, shadow: svc.shadowRef, execution_provider: svc.activeRuntime?.executionProvider }] : [])),
      queue: { depth: q.depth, bytes: q.bytes, quota_bytes: q.quotaBytes, evicted_total: q.evictedTotal },
      uplink: this.uplink ? { kind: this.uplink.name, connected: this.uplink.isConnected(), degraded, ...(this.forwarder ? { forwarder: this.forwarder.stats() } : {}) } : null,
      watch: this.watcher ? this.watcher.stats : null,
      alerts: this.alerts && this.alertActions ? { rules: this.alerts.engine.rules.length, rule_set: this.fleetRules?.report() ?? null, site_brokers_connected: this.alertActions.brokersConnected(), actions: this.alertActions.stats() } : null,
      ...(this.cameras ? { cameras: this.cameras.health() } : {}),
    };
  }

  /** Graceful stop: inputs, then in-flight inference, then uplink, then the queue (committed). */
  async stop(): Promise<void> {
    this.stopping = true;
    // No new desired state from here; one in flight ends once the slots are closed (below).
    const deploying = this.deployer?.stop();
    if (this.telemetryTimer) clearInterval(this.telemetryTimer);
    if (this.reclaimTimer) clearTimeout(this.reclaimTimer);
    this.reclaimTimer = null;
    await this.cameras?.stop();
    await this.watcher?.stop();
    await this.localMqtt?.stop();
    // Keep-alive sockets would hold the stop for their timeout (see closeHttpServer).
    if (this.http) await closeHttpServer(this.http);
    await this.slots.close();
    // A model that finishes loading now is released by its closed slot, never left running.
    await deploying;
    await this.alerts?.idle();
    // A swap under way puts its actions in force first: those are what this closes.
    await this.rulesSwap;
    await this.alertActions?.close();
    await this.alertUplink?.idle();
    this.forwarder?.stop();
    if (this.uplink) {
      if (this.uplink.isConnected()) await this.uplink.publish(topics.status(this.config.device_id), Buffer.from(JSON.stringify(this.status(false))), { retain: true }).catch(() => undefined);
      await this.uplink.close();
    }
    // Answers the acks handed to it first: what was acked is deleted before the agent exits.
    await this.drainWorker?.close();
    this.queue.close();
  }
}


/**
 * The model name of each `models.initial` package (read from its manifest, which the install
 * verifies in full later); two packages of one name are refused before anything installs.
 */
async function initialModelNames(dirs: readonly string[]): Promise<string[]> {
  const names: string[] = [];
  for (const dir of dirs) {
    let name: string;
    try {
      name = modelName.parse((JSON.parse((await directorySource(dir).readManifest()).toString('utf8')) as { name?: unknown }).name);
    } catch (err) {
      throw new AgentError('CONFIG_INVALID', `models.initial: ${dir} is not a model package with a valid name: ${errorLine(err)}`, { cause: err });
    }
    const twin = names.indexOf(name);
    if (twin !== -1) throw new AgentError('MODEL_NAME_DUPLICATE', `models.initial: ${dirs[twin]} and ${dir} are both model ${name}; each model name is one slot, so list one package per name`, { details: { model: name } });
    names.push(name);
  }
  return names;
}
