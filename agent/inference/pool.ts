import { AgentError } from '../errors.js';
import type { InputTensor } from '../../shared/inference/preprocess.js';
import type { Geometry, RawDetection } from '../../shared/inference/detect.js';
import { decoderOutputs } from '../../shared/inference/detect.js';
import { fromWire, toWire, type DetectionSpec, type SessionSettings } from './protocol.js';
import { WorkerSession } from './worker-session.js';

export interface PoolSettings extends SessionSettings {
  /** Worker threads, each with its own session (1 is right for most 2-4 core devices). */
  workers: number;
  /** Largest micro-batch; 1 disables batching. Only used when the model's batch dim is symbolic. */
  maxBatch: number;
  /** How long a lone request may wait for company when batching (0 = batch only what is already queued). */
  batchWindowMs: number;
  /** Requests allowed to wait; beyond that callers get ENGINE_OVERLOADED instead of unbounded memory. */
  maxPending: number;
}

export interface PoolModel {
  bytes: Uint8Array;
  inputName: string;
  inputType: 'float32' | 'uint8';
  /** Dims of one example (no batch dim). */
  itemDims: number[];
  /** The model's batch dim is symbolic, so examples can be stacked. */
  batchable: boolean;
  /** False when the input has no batch dim (a torchvision detector's `[3, H, W]`): one example is fed as `itemDims` alone. */
  batchDim?: boolean | undefined;
  output: string;
  /** A detector: the worker decodes its outputs into boxes (one example per run). */
  detection?: DetectionSpec | undefined;
}

export interface PoolResult {
  /** The output's values (classification); empty for a detector. */
  scores: Float32Array;
  /** A detector's boxes in original-image pixels, and the worker's decode + NMS time. */
  detections?: RawDetection[];
  decodeMs?: number;
  runMs: number;
  queueMs: number;
  /** The worker hand-off of this request's batch: round trip to the worker minus the worker's own time. */
  handoffMs: number;
  batchSize: number;
}

interface Job {
  data: InputTensor;
  geometry?: Geometry | undefined;
  enqueuedAt: number;
  resolve: (r: PoolResult) => void;
  reject: (e: Error) => void;
}

/**
 * Sessions in worker threads behind one queue. When requests pile up and the model allows,
 * waiting examples are stacked into one batch (micro-batching): one run, then the outputs are
 * split back per caller.
 */
export class InferencePool {
  private readonly queue: Job[] = [];
  private readonly idle: WorkerSession[];
  private inFlight = 0;
  private closing: Promise<void> | null = null;
  private drainWaiters: Array<() => void> = [];
  private windowTimer: NodeJS.Timeout | null = null;
  /** Input buffers of one example that came back from the workers, for {@link allocate}. */
  private readonly spare: ArrayBuffer[] = [];
  /** Values in one example, and the bytes they take on the wire. */
  private readonly itemSize: number;
  private readonly itemBytes: number;

  private constructor(
    private readonly sessions: WorkerSession[],
    private readonly model: PoolModel,
    private readonly settings: PoolSettings,
  ) {
    this.idle = [...sessions];
    this.itemSize = model.itemDims.reduce((a, b) => a * b, 1);
    this.itemBytes = this.itemSize * (model.inputType === 'uint8' ? 1 : 4);
  }

  static async open(model: PoolModel, settings: PoolSettings): Promise<InferencePool> {
    const sessions: WorkerSession[] = [];
    try {
      for (let i = 0; i < Math.max(1, settings.workers); i++) sessions.push(await WorkerSession.open(model.bytes, settings, model.detection));
    } catch (err) {
      await Promise.all(sessions.map((s) => s.close()));
      throw err;
    }
    const first = sessions[0]!;
    const fetch = model.detection ? decoderOutputs(model.detection.post, model.detection.outputNames) : [model.output];
    if (!first.info.inputNames.includes(model.inputName) || fetch.some((o) => !first.info.outputNames.includes(o))) {
      await Promise.all(sessions.map((s) => s.close()));
      throw new AgentError(
        'MODEL_PACKAGE_INVALID',
        `manifest names input ${model.inputName} / output ${fetch.join(', ')}, the ONNX file has inputs [${first.info.inputNames.join(', ')}] and outputs [${first.info.outputNames.join(', ')}]`,
      );
    }
    return new InferencePool(sessions, model, settings);
  }

  get executionProvider(): string {
    return this.sessions[0]?.info.executionProvider ?? 'cpu';
  }

  get fallbackReason(): string | undefined {
    return this.sessions[0]?.info.fallbackReason;
  }

  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /**
   * An input array of one example to fill and pass to {@link infer}: a buffer a worker gave
   * back when there is one (its contents are stale: write every value), else a new one. For
   * camera-sized frames a fresh buffer per frame cost more than the conversion that fills it
   * (page faults on first touch: ~10 ms for a 640x640x3 float tensor on a 2-core VM).
   */
  allocate(): InputTensor {
    const buf = this.spare.pop();
    const b = buf && buf.byteLength === this.itemBytes ? buf : new ArrayBuffer(this.itemBytes);
    return this.model.inputType === 'uint8' ? new Uint8Array(b) : new Float32Array(b);
  }

  /** Infer one example. `data` is owned by the pool afterwards (its buffer is transferred). */
  infer(data: InputTensor, geometry?: Geometry): Promise<PoolResult> {
    if (this.closing) return Promise.reject(new AgentError('ENGINE_CLOSED'));
    if (data.length !== this.itemSize) {
      return Promise.reject(new AgentError('TENSOR_SHAPE_MISMATCH', `input ${this.model.inputName} expects ${this.itemSize} values [${this.model.itemDims.join(',')}], got ${data.length}`));
    }
    if (this.queue.length >= this.settings.maxPending) return Promise.reject(new AgentError('ENGINE_OVERLOADED', `${this.queue.length} requests already waiting`));
    return new Promise((resolve, reject) => {
      this.queue.push({ data, geometry, enqueuedAt: performance.now(), resolve, reject });
      this.pump();
    });
  }

  private batchLimit(): number {
    // A detector's boxes are decoded per example in the worker: one example per run.
    return this.model.batchable && this.model.batchDim !== false && !this.model.detection ? Math.max(1, this.settings.maxBatch) : 1;
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const limit = this.batchLimit();
      if (limit > 1 && this.queue.length < limit && this.settings.batchWindowMs > 0) {
        const first = this.queue[0]!;
        const waited = performance.now() - first.enqueuedAt;
        if (waited < this.settings.batchWindowMs) {
          if (!this.windowTimer) {
            this.windowTimer = setTimeout(() => {
              this.windowTimer = null;
              this.pump();
            }, Math.ceil(this.settings.batchWindowMs - waited));
          }
          return;
        }
      }
      const session = this.idle.shift()!;
      const jobs = this.queue.splice(0, limit);
      void this.runBatch(session, jobs);
    }
  }

  private async runBatch(session: WorkerSession, jobs: Job[]): Promise<void> {
    this.inFlight += jobs.length;
    const started = performance.now();
    try {
      const n = jobs.length;
      const itemSize = this.itemSize;
      let input: InputTensor;
      if (n === 1) input = jobs[0]!.data;
      else {
        input = this.model.inputType === 'uint8' ? new Uint8Array(n * itemSize) : new Float32Array(n * itemSize);
        jobs.forEach((j, i) => input.set(j.data, i * itemSize));
      }
      const feeds = { [this.model.inputName]: toWire(this.model.inputType, input, this.model.batchDim === false ? this.model.itemDims : [n, ...this.model.itemDims]) };
      if (this.model.detection) {
        const job = jobs[0]!;
        const geometry = job.geometry ?? { width: this.model.detection.inputWidth, height: this.model.detection.inputHeight, scaleX: 1, scaleY: 1, padX: 0, padY: 0 };
        const res = await session.run(feeds, decoderOutputs(this.model.detection.post, this.model.detection.outputNames), geometry);
        this.keep(res.returned);
        job.resolve({ scores: new Float32Array(0), detections: res.detections ?? [], decodeMs: res.decodeMs ?? 0, runMs: res.runMs, queueMs: started - job.enqueuedAt, handoffMs: res.handoffMs, batchSize: 1 });
        return;
      }
      const res = await session.run(feeds, [this.model.output]);
      this.keep(res.returned);
      const out = res.outputs[this.model.output];
      if (!out) throw new Error(`model produced no output ${this.model.output}`);
      const all = fromWire(out);
      const per = all.length / n;
      jobs.forEach((j, i) => {
        const slice = all.subarray(i * per, (i + 1) * per);
        j.resolve({ scores: slice instanceof Float32Array ? slice : Float32Array.from(slice as ArrayLike<number>, Number), runMs: res.runMs, queueMs: started - j.enqueuedAt, handoffMs: res.handoffMs, batchSize: n });
      });
    } catch (err) {
      const e = err instanceof AgentError ? err : new AgentError('INFERENCE_FAILED', `inference failed: ${(err as Error).message}`, { cause: err });
      for (const j of jobs) j.reject(e);
    } finally {
      this.inFlight -= jobs.length;
      if (session.alive) this.idle.push(session);
      if (this.pending === 0) for (const w of this.drainWaiters.splice(0)) w();
      this.pump();
    }
  }

  /** Keep returned input buffers of one example's size, as many as requests can be in flight at once. */
  private keep(returned: ArrayBuffer[]): void {
    for (const b of returned) if (b.byteLength === this.itemBytes && this.spare.length < this.sessions.length + 1) this.spare.push(b);
  }

  /** Stop taking requests, let queued and running ones finish, then release the sessions. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        if (this.pending > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
        if (this.windowTimer) clearTimeout(this.windowTimer);
        await Promise.all(this.sessions.map((s) => s.close()));
      })();
    }
    return this.closing;
  }
}
