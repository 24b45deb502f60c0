/**
 * Rollout at fleet scale: N simulated devices (1,000 by default) with real credentials speak
 * the real device protocol over MQTT to the real fleet service (embedded broker with per-device
 * scrypt authentication, SQLite state, HTTP API) and take a canary + 2-wave rollout of a new
 * model version. Measured on the fleet process alone, as deployed: the fleet service runs in
 * a process of its own (started fresh for this benchmark, so nothing an earlier benchmark left
 * in the bench process counts), and the simulator in another; both `node --import tsx`.
 *
 * `value` is the fleet process's peak RSS in MB (target < 500) with every device converged:
 * the kernel's high-water mark (VmHWM in /proc/<pid>/status), read by the bench process just
 * before the fleet process exits.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ModelRef } from '../shared/schemas/index.js';
import { tsxNodeArgs } from '../shared/ts-entry.js';
import type { SimDevice } from '../test/helpers/device-sim.js';
import { waitFor } from '../test/helpers/wait.js';

const CHILD_FLAG = '--rollout-scale-sim';
const FLEET_FLAG = '--rollout-scale-fleet';
const MB = 1024 * 1024;
const V1: ModelRef = { name: 'scale', version: '1.0.0' };
const V2: ModelRef = { name: 'scale', version: '2.0.0' };

export interface RolloutScaleOptions {
  /** Simulated devices. Default 1000. */
  devices?: number;
  /**
   * Telemetry window of every device; 0 = none. With telemetry the plan keeps the default
   * quality gates (half of each stage's devices must report the candidate's metrics); without,
   * the gates judge install reports only (`min_devices_reporting: 0`). Default 10 s: every
   * device sends a window every 10 s for the whole run (100 messages/s at 1,000 devices).
   */
  telemetryIntervalMs?: number;
  /** The fleet's notification rate: desired states published per second at most. Default 100. */
  notifyPerSecond?: number;
  /** Bake time of each stage. Default 5 s. */
  bakeS?: number;
  /**
   * Registrations in flight. Each hashes its secret with scrypt (16 MiB, memory-hard) on the
   * libuv pool, so more than the pool's 4 threads only queues. Default 4.
   */
  registerConcurrency?: number;
  /** Give up waiting for convergence after this long (the result then says how far it got). Default 300 s. */
  timeoutMs?: number;
  /** Run the simulator in this process instead of a child (CPU and RSS then include it). */
  inProcessSimulator?: boolean;
  /**
   * Run the fleet service in this process instead of a process of its own (RSS then includes
   * whatever this process held before: earlier benchmarks, their modules). Default false.
   */
  inProcessFleet?: boolean;
  /** Progress lines (phases, registration count, rollout stages); default none. */
  progress?: (line: string) => void;
}

interface Phase {
  seconds: number;
  cpu_s: number;
  peak_rss_mb: number;
}

export interface RolloutScaleResult {
  name: 'rollout_scale';
  /** Peak RSS of the fleet process, MB. */
  value: number;
  target: string;
  devices: number;
  /** Devices that report the new version at the end (per the fleet's device registry). */
  converged: number;
  /** ...and as the simulated devices themselves saw it. */
  converged_sim: number;
  rollout_status: string;
  /** From `rollouts.create` to the last device confirming the new version. */
  time_to_all_s: number | null;
  /**
   * ...to the rollout's `completed` decision. With report-only gates a stage may pass before
   * all its devices confirmed (they converge after), so this can come before `time_to_all_s`.
   */
  time_to_completed_s: number | null;
  /** Per stage: when it started and when its last device confirmed, seconds after create. */
  stages: Array<{ name: string; devices: number; started_s: number; all_installed_s: number | null; install_rate_per_s: number | null; notify_s_at_rate: number }>;
  /** The configured rate, and the shortest time it allows to notify every device (stages summed, bakes excluded). */
  notification_rate: { per_s: number; min_notify_all_s: number; note: string };
  plan: string;
  telemetry_interval_ms: number;
  /** Raw scrypt hashes/s of this machine with the fleet's parameters (1 and 4 in flight): what registration is bound by. */
  scrypt_raw_per_s: { one: number; four: number };
  /**
   * Device messages the service handed to the rollout manager during the rollout, and the time
   * the manager took per message (fold the event into the state; save what changed, or leave a
   * quiet step for the next save, see `quietFlushMs`).
   */
  rollout_events: { status: number; telemetry: number; manager_ms_mean: number; manager_ms_max: number; manager_s_total: number };
  /** Fleet CPU seconds (user + system, every thread of the process) over the whole run. */
  fleet_cpu_s: number;
  peak_rss_mb: number;
  rss_before_mb: number;
  phases: {
    register: Phase & { per_s: number; concurrency: number; scrypt: string };
    connect: Phase;
    rollout: Phase & { event_loop_p99_ms: number };
    /** After the rollout every device reconnects: verifications come from the cache of verified secrets. */
    reconnect: { seconds: number; cpu_s: number; cache_hits: number; cache_misses: number };
  };
  simulator: { where: 'child process' | 'in process'; cpu_s: number | null; peak_rss_mb: number | null };
  /**
   * Where the fleet ran. `vm_hwm_mb`: the kernel's peak RSS of that process (`value`);
   * `sampled_peak_mb`: the largest RSS its own 100 ms sampler saw (the phases' peaks).
   */
  fleet_process: { where: 'own process' | 'bench process'; pid: number; vm_hwm_mb: number | null; sampled_peak_mb: number; loader: string };
  warnings: string[];
  note: string;
}

// ---------------------------------------------------------------- the simulator child

type ToChild = { type: 'start'; url: string; devices: SimDevice[]; telemetryIntervalMs: number } | { type: 'reconnect' } | { type: 'stop' };
type FromChild = { type: 'loaded' } | { type: 'ready'; connect_s: number } | { type: 'reconnected'; seconds: number } | { type: 'stopped'; on_new: number; cpu_s: number; peak_rss_mb: number } | { type: 'error'; message: string };

/** The simulator, fed and stopped over IPC. */
async function runSimChild(): Promise<void> {
  const { SimulatedDevices } = await import('../test/helpers/device-sim.js');
  const send = (m: FromChild): void => void process.send?.(m);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  let sims: InstanceType<typeof SimulatedDevices> | null = null;
  let ids: string[] = [];
  process.on('message', (m: ToChild) => {
    if (m.type === 'start') {
      ids = m.devices.map((d) => d.id);
      sims = new SimulatedDevices({ url: m.url, devices: m.devices, telemetryIntervalMs: m.telemetryIntervalMs, connectBatch: 50 });
      const t0 = performance.now();
      sims.start().then(
        () => send({ type: 'ready', connect_s: (performance.now() - t0) / 1000 }),
        (err: unknown) => send({ type: 'error', message: (err as Error).message }),
      );
    } else if (m.type === 'reconnect') {
      const t0 = performance.now();
      void sims?.reconnectAll().then(
        () => send({ type: 'reconnected', seconds: (performance.now() - t0) / 1000 }),
        (err: unknown) => send({ type: 'error', message: (err as Error).message }),
      );
    } else if (m.type === 'stop') {
      const s = sims;
      const onNew = s ? ids.filter((id) => s.activeOf(id)?.version === V2.version).length : 0;
      void (s ? s.stop() : Promise.resolve()).finally(() => {
        clearInterval(sampler);
        const cpu = process.cpuUsage();
        send({ type: 'stopped', on_new: onNew, cpu_s: (cpu.user + cpu.system) / 1e6, peak_rss_mb: peak / MB });
        process.disconnect?.();
      });
    }
  });
  // The fleet process went away (crash, Ctrl-C): nothing left to simulate for.
  process.on('disconnect', () => {
    clearInterval(sampler);
    void (sims?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
  });
  send({ type: 'loaded' });
}

/** The simulator behind a small interface, in a child process or in this one. */
interface Simulator {
  start(url: string, devices: SimDevice[], telemetryIntervalMs: number): Promise<number>;
  /** Every device reconnects; resolves when all are connected again. */
  reconnect(): Promise<void>;
  stop(): Promise<{ on_new: number; cpu_s: number | null; peak_rss_mb: number | null }>;
}

async function childSimulator(): Promise<Simulator> {
  // The child loads TypeScript through the same loader this process uses.
  const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], { execArgv: tsxNodeArgs(import.meta.url), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = (): Promise<FromChild> =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`simulator exited with ${code}`));
      child.once('exit', onExit);
      child.once('message', (m: FromChild) => {
        child.off('exit', onExit);
        resolve(m);
      });
    });
  // Loaded before anything is measured: compiling it must not compete with the fleet's figures.
  const loaded = await next();
  if (loaded.type !== 'loaded') throw new Error(`simulator: unexpected ${loaded.type}`);
  return {
    async start(url, devices, telemetryIntervalMs) {
      const ready = next();
      child.send({ type: 'start', url, devices, telemetryIntervalMs } satisfies ToChild);
      const m = await ready;
      if (m.type !== 'ready') throw new Error(`simulator: ${m.type === 'error' ? m.message : m.type}`);
      return m.connect_s;
    },
    async reconnect() {
      const done = next();
      child.send({ type: 'reconnect' } satisfies ToChild);
      const m = await done;
      if (m.type !== 'reconnected') throw new Error(`simulator: ${m.type === 'error' ? m.message : m.type}`);
    },
    async stop() {
      if (child.exitCode !== null || !child.connected) return { on_new: 0, cpu_s: null, peak_rss_mb: null };
      const stopped = next();
      child.send({ type: 'stop' } satisfies ToChild);
      const m = await stopped.catch(() => null);
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      return m && m.type === 'stopped' ? { on_new: m.on_new, cpu_s: m.cpu_s, peak_rss_mb: m.peak_rss_mb } : { on_new: 0, cpu_s: null, peak_rss_mb: null };
    },
  };
}

async function inProcessSimulator(): Promise<Simulator> {
  const { SimulatedDevices } = await import('../test/helpers/device-sim.js');
  let sims: InstanceType<typeof SimulatedDevices> | null = null;
  let ids: string[] = [];
  return {
    async start(url, devices, telemetryIntervalMs) {
      ids = devices.map((d) => d.id);
      sims = new SimulatedDevices({ url, devices, telemetryIntervalMs, connectBatch: 50 });
      const t0 = performance.now();
      await sims.start();
      return (performance.now() - t0) / 1000;
    },
    async reconnect() {
      await sims?.reconnectAll();
    },
    async stop() {
      const s = sims;
      const onNew = s ? ids.filter((id) => s.activeOf(id)?.version === V2.version).length : 0;
      sims = null;
      await s?.stop();
      return { on_new: onNew, cpu_s: null, peak_rss_mb: null };
    },
  };
}

// ---------------------------------------------------------------- the bench

/** Hashes/s of scrypt with the fleet's parameters, one at a time and four in flight (the libuv pool). */
async function scryptRate(p: { N: number; r: number; p: number }): Promise<{ one: number; four: number }> {
  const { randomBytes, scrypt } = await import('node:crypto');
  const hash = (): Promise<void> =>
    new Promise((resolve, reject) => scrypt('secret', randomBytes(16), 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + MB }, (err) => (err ? reject(err) : resolve())));
  const rate = async (inFlight: number, total: number): Promise<number> => {
    const t = performance.now();
    let started = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (started++ < total) await hash();
      }),
    );
    return r2(total / ((performance.now() - t) / 1000));
  };
  return { one: await rate(1, 10), four: await rate(4, 20) };
}

const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
};
const r2 = (x: number): number => Math.round(x * 100) / 100;
/** Two versions of a small image model (content differs by seed), packed with the real packer. */
async function packages(dir: string): Promise<[string, string]> {
  const { packModel } = await import('../fleet/adapters/fs/pack.js');
  const { smallCnnModel } = await import('../test/helpers/models.js');
  const out: string[] = [];
  for (const [i, v] of [V1, V2].entries()) {
    const onnx = join(dir, `model-${i}.onnx`);
    writeFileSync(onnx, smallCnnModel({ channels: 1, height: 28, width: 28, classes: 4, seed: i + 1, layout: 'NCHW', inputType: 'float32' }).bytes);
    const pkg = join(dir, `pkg-${v.version}`);
    await packModel({ onnxPath: onnx, outDir: pkg, labels: ['a', 'b', 'c', 'd'], name: v.name, version: v.version });
    out.push(pkg);
  }
  return out as [string, string];
}

/** Peak and current RSS of a process, from the kernel (Linux), in bytes; null elsewhere. */
function kernelRss(pid: number): { hwm: number; rss: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : NaN;
    };
    const hwm = kb('VmHWM');
    const rss = kb('VmRSS');
    return Number.isFinite(hwm) ? { hwm, rss } : null;
  } catch {
    return null;
  }
}

type ToFleet = { type: 'run'; opts: Omit<RolloutScaleOptions, 'progress'> } | { type: 'exit' };
type FromFleet = { type: 'progress'; line: string } | { type: 'result'; result: RolloutScaleResult } | { type: 'error'; message: string };

/** The fleet process: runs the benchmark's fleet side and reports over IPC. */
function runFleetChild(): void {
  const send = (m: FromFleet): void => void process.send?.(m);
  process.on('message', (m: ToFleet) => {
    if (m.type === 'run') {
      runFleetBench({ ...m.opts, progress: (line) => send({ type: 'progress', line }) }).then(
        (result) => send({ type: 'result', result }),
        (err: unknown) => send({ type: 'error', message: (err as Error).stack ?? String(err) }),
      );
    } else if (m.type === 'exit') {
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/**
 * Rollout at fleet scale, the fleet service in a process of its own (default) whose kernel
 * peak RSS is the value; see the module comment.
 */
export async function benchRolloutScale(opts: RolloutScaleOptions = {}): Promise<RolloutScaleResult> {
  if (opts.inProcessFleet) return runFleetBench(opts);
  const { progress, ...rest } = opts;
  const child = fork(fileURLToPath(import.meta.url), [FLEET_FLAG], { execArgv: ['--import', import.meta.resolve('tsx')], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const result = await new Promise<RolloutScaleResult>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`fleet process exited with ${code} before reporting`)));
      child.on('message', (m: FromFleet) => {
        if (m.type === 'progress') progress?.(m.line);
        else if (m.type === 'result') resolve(m.result);
        else reject(new Error(`fleet process: ${m.message}`));
      });
      child.send({ type: 'run', opts: rest } satisfies ToFleet);
    });
    // Read before the process goes: its peak over the whole run, whatever the sampler missed.
    const k = child.pid === undefined ? null : kernelRss(child.pid);
    const hwm = k === null ? null : Math.round(k.hwm / MB);
    result.fleet_process = { ...result.fleet_process, vm_hwm_mb: hwm };
    if (hwm !== null) {
      result.value = hwm;
      result.peak_rss_mb = hwm;
    }
    return result;
  } finally {
    if (child.exitCode === null && child.connected) {
      child.send({ type: 'exit' } satisfies ToFleet);
      await new Promise((r) => child.once('exit', r));
    }
  }
}

/** The benchmark's fleet side, in this process. */
async function runFleetBench(opts: RolloutScaleOptions = {}): Promise<RolloutScaleResult> {
  const n = opts.devices ?? 1000;
  const telemetryIntervalMs = opts.telemetryIntervalMs ?? 10_000;
  const notifyPerSecond = opts.notifyPerSecond ?? 100;
  const bakeS = opts.bakeS ?? 5;
  const concurrency = opts.registerConcurrency ?? 4;
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const started = performance.now();
  const say = (line: string): void => opts.progress?.(`[rollout_scale ${((performance.now() - started) / 1000).toFixed(1)}s] ${line}`);
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-rollout-scale-'));
  const { pino } = await import('pino');
  const { startFleetService } = await import('../fleet/boot/service.js');
  const { createFleetHttp } = await import('../fleet/edges/server.js');
  const { DEFAULT_SCRYPT } = await import('../fleet/app/devices/credentials.js');

  // Warnings and errors of the fleet (gate failures, rejected messages) go into the result.
  const warnings: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim() || warnings.length >= 20) continue;
        const l = JSON.parse(line) as { msg?: string; reason?: string };
        warnings.push(`${l.msg ?? ''}${l.reason ? `: ${l.reason}` : ''}`);
      }
      cb();
    },
  });

  let phase: 'setup' | 'register' | 'connect' | 'rollout' = 'setup';
  const peaks = { setup: 0, register: 0, connect: 0, rollout: 0 };
  const rssBefore = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    const rss = process.memoryUsage().rss;
    peaks[phase] = Math.max(peaks[phase], rss);
  }, 100);
  const sim = opts.inProcessSimulator ? await inProcessSimulator() : await childSimulator();
  const scryptRaw = await scryptRate(DEFAULT_SCRYPT);
  say(`raw scrypt: ${scryptRaw.one}/s one at a time, ${scryptRaw.four}/s four in flight`);
  const pkgs = await packages(dir);
  // From here on everything this process does is the fleet's work (the bench's own polling is light).
  const cpu0 = process.cpuUsage();
  const svc = await startFleetService({ dataDir: join(dir, 'fleet'), httpPort: 0, mqttPort: 0, http: createFleetHttp, log: pino({ level: 'warn' }, sink), tickMs: 250, notifyPerSecond });
  try {
    const ctx = svc.ctx;
    for (const p of pkgs) await ctx.registry.push(p, { actor: 'bench' });

    // 1. Registration: one scrypt hash per secret, on the libuv pool (4 threads by default).
    phase = 'register';
    say(`registering ${n} devices (${concurrency} in flight)...`);
    let cpu = process.cpuUsage();
    let t = performance.now();
    const devices: SimDevice[] = new Array<SimDevice>(n);
    let nextIndex = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, n) }, async () => {
        for (let i = nextIndex++; i < n; i = nextIndex++) {
          const id = `dev-${String(i).padStart(5, '0')}`;
          const { secret } = await ctx.devices.register(id, { tags: { fleet: 'scale', site: `site-${i % 10}` } });
          devices[i] = { id, secret, active: V1 };
          if ((i + 1) % 100 === 0) say(`registered ${i + 1}/${n} devices`);
        }
      }),
    );
    const registerS = (performance.now() - t) / 1000;
    const register = { seconds: r2(registerS), cpu_s: r2(cpuSeconds(cpu)), peak_rss_mb: 0, per_s: r2(n / registerS), concurrency, scrypt: `N=${DEFAULT_SCRYPT.N}, r=${DEFAULT_SCRYPT.r}, p=${DEFAULT_SCRYPT.p}` };

    // 2. Every device connects (the broker verifies each secret with scrypt) and reports.
    phase = 'connect';
    say(`connecting ${n} simulated devices (${opts.inProcessSimulator ? 'in process' : 'child process'})...`);
    cpu = process.cpuUsage();
    t = performance.now();
    await sim.start(svc.urls.mqtt, devices, telemetryIntervalMs);
    // Every device reported what it runs; with telemetry, also a baseline window (the rollout
    // pairs each device's candidate metrics with its previous version's).
    const ready = (d: { models: { active: ModelRef | null }; telemetry: { inference: { count: number } } | null }): boolean =>
      d.models.active?.version === V1.version && (telemetryIntervalMs === 0 || (d.telemetry?.inference.count ?? 0) > 0);
    await waitFor(() => ctx.devices.list({ tags: { fleet: 'scale' } }).filter(ready).length === n, Math.max(60_000, 3 * telemetryIntervalMs), 1000);
    const connect = { seconds: r2((performance.now() - t) / 1000), cpu_s: r2(cpuSeconds(cpu)), peak_rss_mb: 0 };

    // 3. The rollout: canary 10%, waves 50% and 100%.
    phase = 'rollout';
    say(`every device reported ${V1.version}${telemetryIntervalMs ? ' and a telemetry baseline' : ''}; creating the rollout`);
    cpu = process.cpuUsage();
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const created = Date.now();
    t = performance.now();
    // Without telemetry no device can report metrics: the gates judge install reports only.
    const gates = telemetryIntervalMs === 0 ? { min_devices_reporting: 0, min_reporting_ratio: 0 } : {};
    const plan = { canary: { devices: { percent: 10 }, bake_s: bakeS }, waves: [{ devices: { percent: 50 }, bake_s: bakeS }, { devices: { percent: 100 }, bake_s: bakeS }], gates };
    // Time every device event the service hands to the rollout manager (fold + persist).
    const manager = ctx.rollouts;
    const events = { status: 0, telemetry: 0, ms: 0, max_ms: 0 };
    const timed = <A extends unknown[]>(kind: 'status' | 'telemetry', f: (...a: A) => void) => (...a: A): void => {
      const t0 = performance.now();
      f(...a);
      const ms = performance.now() - t0;
      events[kind]++;
      events.ms += ms;
      events.max_ms = Math.max(events.max_ms, ms);
    };
    // When each device first reported the new version active (the service passes every status
    // through here, also after the rollout completed and stopped managing devices).
    const confirmed = new Map<string, number>();
    const onStatus = timed('status', manager.onStatus.bind(manager));
    manager.onStatus = (st) => {
      if (st.models.active?.version === V2.version && !confirmed.has(st.device_id)) confirmed.set(st.device_id, Date.now());
      onStatus(st);
    };
    manager.onTelemetry = timed('telemetry', manager.onTelemetry.bind(manager));
    const id = ctx.rollouts.create({ model: V2, selector: { fleet: 'scale' }, plan, actor: 'bench' }).state.id;
    let allAt: number | null = null;
    let completedAt: number | null = null;
    let lastLine = '';
    await waitFor(() => {
      if (allAt === null && confirmed.size === n) allAt = performance.now();
      const st = ctx.rollouts.get(id).state;
      const status = st.status;
      const line = `rollout ${status}, stage ${st.stage}: ${confirmed.size}/${n} devices report ${V2.version}`;
      if (line !== lastLine) say((lastLine = line));
      if (completedAt === null && status === 'completed') completedAt = performance.now();
      return (allAt !== null && completedAt !== null) || status === 'paused' || status === 'aborted';
    }, timeoutMs, 100);
    await ctx.rollouts.settled();
    loop.disable();
    const rollout = { seconds: r2((performance.now() - t) / 1000), cpu_s: r2(cpuSeconds(cpu)), peak_rss_mb: 0, event_loop_p99_ms: r2(loop.percentile(99) / 1e6) };

    const state = ctx.rollouts.get(id).state;
    const { stagesOf } = await import('../fleet/core/rollouts/stages.js');
    const stageStart = new Map<number, number>();
    for (const d of [...ctx.rolloutDecisions(id, 10_000)].reverse() as Array<{ kind: string; stage?: number; at: number }>) if (d.kind === 'stage_started' && d.stage !== undefined && !stageStart.has(d.stage)) stageStart.set(d.stage, d.at);
    const stages = stagesOf(state.plan).map((s) => {
      const mine = Object.entries(state.devices).filter(([, d]) => d.assigned_stage === s.index);
      const started = stageStart.get(s.index) ?? null;
      const times = mine.map(([deviceId]) => confirmed.get(deviceId) ?? null);
      const last = times.length && times.every((x) => x !== null) ? Math.max(...(times as number[])) : null;
      return {
        name: s.name,
        devices: mine.length,
        started_s: started === null ? -1 : r2((started - created) / 1000),
        all_installed_s: last === null ? null : r2((last - created) / 1000),
        install_rate_per_s: last === null || started === null ? null : r2(mine.length / Math.max(0.001, (last - started) / 1000)),
        notify_s_at_rate: r2(mine.length / notifyPerSecond),
      };
    });
    const converged = ctx.devices.list({ tags: { fleet: 'scale' } }).filter((d) => d.models.active?.version === V2.version).length;

    // 4. Every device reconnects (a broker restart): verified secrets are cached, no scrypt.
    say(`reconnecting all ${n} devices...`);
    const cache0 = ctx.devices.authCache.stats();
    const cpuR = process.cpuUsage();
    const tR = performance.now();
    await sim.reconnect();
    const reconnect = { seconds: r2((performance.now() - tR) / 1000), cpu_s: r2(cpuSeconds(cpuR)), cache_hits: ctx.devices.authCache.stats().hits - cache0.hits, cache_misses: ctx.devices.authCache.stats().misses - cache0.misses };
    const simStop = await sim.stop();
    phase = 'setup';
    clearInterval(sampler);
    const peak = Math.max(...Object.values(peaks));
    const mb = (x: number): number => Math.round(x / MB);
    return {
      name: 'rollout_scale',
      value: mb(peak),
      target: `< 500 MB with converged = ${n}`,
      devices: n,
      converged,
      converged_sim: simStop.on_new,
      rollout_status: state.status,
      time_to_all_s: allAt === null ? null : r2((allAt - t) / 1000),
      time_to_completed_s: completedAt === null ? null : r2((completedAt - t) / 1000),
      stages,
      notification_rate: {
        per_s: notifyPerSecond,
        min_notify_all_s: r2(n / notifyPerSecond),
        note: 'the MQTT backend paces desired states (QoS 1, retained, one per device) at this rate; per stage, install_rate_per_s is what the devices achieved and notify_s_at_rate the floor the rate sets',
      },
      plan:
        `canary 10%, waves 50% and 100%, bake ${bakeS}s each; ` +
        (telemetryIntervalMs === 0
          ? 'gates on install reports only (no failures; min_devices_reporting 0: no telemetry)'
          : "default gates (half of each stage's devices must report >= 20 inferences on the candidate)"),
      telemetry_interval_ms: telemetryIntervalMs,
      scrypt_raw_per_s: scryptRaw,
      rollout_events: {
        status: events.status,
        telemetry: events.telemetry,
        manager_ms_mean: r2(events.ms / Math.max(1, events.status + events.telemetry)),
        manager_ms_max: r2(events.max_ms),
        manager_s_total: r2(events.ms / 1000),
      },
      fleet_cpu_s: r2(cpuSeconds(cpu0)),
      peak_rss_mb: mb(peak),
      rss_before_mb: mb(rssBefore),
      phases: {
        register: { ...register, peak_rss_mb: mb(peaks.register) },
        connect: { ...connect, peak_rss_mb: mb(peaks.connect) },
        rollout: { ...rollout, peak_rss_mb: mb(peaks.rollout) },
        reconnect,
      },
      simulator: { where: opts.inProcessSimulator ? 'in process' : 'child process', cpu_s: simStop.cpu_s === null ? null : r2(simStop.cpu_s), peak_rss_mb: simStop.peak_rss_mb === null ? null : Math.round(simStop.peak_rss_mb) },
      fleet_process: {
        where: opts.inProcessFleet ? 'bench process' : 'own process',
        pid: process.pid,
        vm_hwm_mb: null,
        sampled_peak_mb: mb(peak),
        loader: 'node --import tsx (TypeScript sources; a deployed fleet runs the compiled JS in dist/)',
      },
      warnings,
      note:
        `registration ${register.seconds}s and connect ${connect.seconds}s are scrypt-bound (one hash per secret on register, one verify per MQTT CONNECT, ` +
        `${register.scrypt}, on the libuv pool: UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}); the rollout itself took ${rollout.seconds}s and ${rollout.cpu_s} CPU s`,
    };
  } finally {
    clearInterval(sampler);
    await sim.stop().catch(() => undefined);
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes(CHILD_FLAG) && process.send) void runSimChild();
if (process.argv.includes(FLEET_FLAG) && process.send) runFleetChild();
