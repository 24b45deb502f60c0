/**
 * JSON bodies of `POST /v1/infer` (`{ image_b64 }` or `{ tensor, shape? }`), parsed and
 * validated off the event loop when they are large. Measured before this existed: a 224x224x3
 * tensor (2.9 MB of JSON) held the event loop 180-250 ms, a 640x640x3 one (23 MB) about 1 s,
 * and `/healthz` waited that long. A body of at most {@link INLINE_BYTES} is parsed in place
 * (well under a millisecond); a larger one goes to one worker thread, started on first use, and
 * comes back as transferred typed arrays: the values arrive as a Float64Array the model input
 * takes as it is, so the event loop does no per-value work for them.
 */
import type { Worker } from 'node:worker_threads';
import { EdgeloopError, ExitCode } from '../../shared/errors.js';
import { inferRequest } from '../../shared/schemas/index.js';
import { startWorker } from '../../shared/ts-entry.js';
import { parseJsonWith } from '../../shared/validate.js';
import type { ModelInput } from '../model/runtime.js';

/** Bodies up to this size are parsed on the calling thread. */
export const INLINE_BYTES = 64 * 1024;

/** A parsed body in transferable form: the worker's answer. */
export type WireBody =
  | {
      ok: true;
      requestId?: string | undefined;
      /** The model slot the body names (`model`). */
      model?: string | undefined;
      image?: Uint8Array;
      /** Tensor values, row after row for a batch of rows (then `shape` is [rows, row length] unless the request gave one). */
      values?: Float64Array;
      shape?: number[] | undefined;
      /** Rows of unequal length, as sent (the shape check refuses them with its own message). */
      ragged?: number[][];
    }
  | { ok: false; code: string; message: string; status: number; exit: ExitCode; details?: Record<string, unknown> | undefined };

/** Parse and validate a JSON inference body into its transferable form (the worker's whole job). */
export function parseToWire(body: Uint8Array): WireBody {
  try {
    const r = parseJsonWith(inferRequest, body, 'INPUT_INVALID', 'inference request');
    const model = r.model !== undefined ? { model: r.model } : {};
    if (r.image_b64 !== undefined) return { ok: true, requestId: r.request_id, ...model, image: Buffer.from(r.image_b64, 'base64') };
    const t = r.tensor!;
    if (t.length === 0 || !Array.isArray(t[0])) return { ok: true, requestId: r.request_id, ...model, values: Float64Array.from(t as number[]), shape: r.shape };
    const rows = t as number[][];
    const rowLength = rows[0]!.length;
    if (rows.some((row) => row.length !== rowLength)) return { ok: true, requestId: r.request_id, ...model, ragged: rows, shape: r.shape };
    const values = new Float64Array(rows.length * rowLength);
    rows.forEach((row, i) => values.set(row, i * rowLength));
    return { ok: true, requestId: r.request_id, ...model, values, shape: r.shape ?? [rows.length, rowLength] };
  } catch (err) {
    if (err instanceof EdgeloopError) return { ok: false, code: err.code, message: err.message, status: err.status, exit: err.exit, details: err.details };
    return { ok: false, code: 'INTERNAL', message: (err as Error).message, status: 500, exit: ExitCode.FAILURE };
  }
}

/** A parsed inference body: the model input, its request id and the model slot it names. */
export interface ParsedBody {
  input: ModelInput;
  requestId?: string | undefined;
  model?: string | undefined;
}

/** The model input a wire body stands for. */
function fromWire(w: WireBody): ParsedBody {
  if (!w.ok) throw new EdgeloopError(w.code, w.message, { status: w.status, exit: w.exit, details: w.details });
  if (w.image) return { input: { kind: 'image', bytes: w.image }, requestId: w.requestId, model: w.model };
  return { input: { kind: 'tensor', tensor: w.ragged ?? w.values ?? new Float64Array(0), shape: w.shape }, requestId: w.requestId, model: w.model };
}

type Pending = { resolve: (w: WireBody) => void; reject: (err: Error) => void };

/** Parses JSON inference bodies: small ones in place, large ones in a worker thread. */
export class JsonBodyParser {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Bodies parsed in the worker (observable, for tests and metrics). */
  offThread = 0;

  /** The model input of a JSON body. A body larger than {@link INLINE_BYTES} is handed to the worker: do not use it after the call. */
  async parse(body: Uint8Array): Promise<ParsedBody> {
    if (body.byteLength <= INLINE_BYTES) return fromWire(parseToWire(body));
    this.offThread++;
    // The body is handed over, not copied, when it owns its whole buffer (a request body read
    // into one Buffer does); the caller must not use it afterwards.
    const own = body.byteOffset === 0 && body.buffer.byteLength === body.byteLength && body.buffer instanceof ArrayBuffer ? body : new Uint8Array(body);
    const wire = await new Promise<WireBody>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.started().postMessage({ id, body: own }, [own.buffer as ArrayBuffer]);
    });
    return fromWire(wire);
  }

  /** Stop the worker; bodies it was still parsing fail (INTERNAL), their requests are answered 500. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
    this.failAll(new EdgeloopError('INTERNAL', 'the JSON body parser was closed'));
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const w = startWorker(import.meta.url, 'json-body-thread');
    w.unref();
    w.on('message', (m: { id: number; wire: WireBody }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m.wire);
    });
    w.on('error', (err) => {
      this.worker = null;
      this.failAll(err);
    });
    w.on('exit', () => {
      if (this.worker === w) this.worker = null;
      this.failAll(new EdgeloopError('INTERNAL', 'the JSON body parser stopped'));
    });
    this.worker = w;
    return w;
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
