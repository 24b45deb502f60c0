import type { Worker } from 'node:worker_threads';
import { AgentError } from '../errors.js';
import type { Geometry, RawDetection } from '../../shared/inference/detect.js';
import type { DetectionSpec, LoadInfo, SessionSettings, WireTensor, WorkerRequest, WorkerResponse } from './protocol.js';
import { startWorker } from '../../shared/ts-entry.js';

type Pending = { resolve: (r: WorkerResponse & { ok: true }) => void; reject: (e: Error) => void };

/** One worker thread owning one ONNX Runtime session; requests are answered in order. */
export class WorkerSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private dead: Error | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly info: LoadInfo,
  ) {}

  /** Start a worker and load the model; rejects with MODEL_LOAD_FAILED when ORT refuses it. */
  static async open(model: Uint8Array, settings: SessionSettings, detection?: DetectionSpec): Promise<WorkerSession> {
    const worker = startWorker(import.meta.url, 'worker');
    const holder = new WorkerSession(worker, { inputNames: [], outputNames: [], executionProvider: 'cpu' });
    holder.wire();
    const copy = model.slice().buffer as ArrayBuffer;
    try {
      const res = await holder.request({ op: 'load', id: 0, model: copy, settings, detection }, [copy]);
      const info = res.load!;
      Object.assign(holder.info, info);
      return holder;
    } catch (err) {
      await worker.terminate();
      throw new AgentError('MODEL_LOAD_FAILED', `ONNX Runtime could not load the model: ${(err as Error).message}`, { cause: err });
    }
  }

  private wire(): void {
    this.worker.on('message', (r: WorkerResponse) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r);
      else p.reject(new Error(r.error.message));
    });
    const die = (err: Error): void => {
      this.dead = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => die(err));
    this.worker.on('exit', (code) => die(new Error(`inference worker exited with code ${code}`)));
  }

  private request(msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerResponse & { ok: true }> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  get alive(): boolean {
    return this.dead === null;
  }

  /**
   * Run in the worker. `handoffMs` is what the thread hop cost this request: the round trip
   * seen from here minus the time the worker held it (posting, waking the worker, the reply
   * and waking this thread again; never the run itself).
   */
  async run(feeds: Record<string, WireTensor>, outputs: string[] = [], geometry?: Geometry): Promise<{ outputs: Record<string, WireTensor>; runMs: number; handoffMs: number; detections?: RawDetection[]; decodeMs?: number; returned: ArrayBuffer[] }> {
    const posted = performance.now();
    const res = await this.request({ op: 'run', id: 0, feeds, outputs, geometry }, Object.values(feeds).map((f) => f.data));
    return {
      outputs: res.outputs ?? {},
      runMs: res.runMs ?? 0,
      handoffMs: Math.max(0, performance.now() - posted - (res.busyMs ?? 0)),
      returned: res.returned ?? [],
      ...(res.detections ? { detections: res.detections, decodeMs: res.decodeMs ?? 0 } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.alive) await this.request({ op: 'release', id: 0 }).catch(() => undefined);
    await this.worker.terminate();
  }
}
