/** Messages between the main thread and an inference worker. Tensors travel as transferred ArrayBuffers. */
import type { Geometry, RawDetection } from '../../shared/inference/detect.js';
import type { DetectionPostprocessing } from '../../shared/schemas/index.js';

/** What a worker needs to decode a detector's outputs itself (decode and NMS stay off the main thread). */
export interface DetectionSpec {
  post: DetectionPostprocessing;
  /** Every output of the model, in manifest order (a decoder without a named output reads the first). */
  outputNames: string[];
  classes: number;
  inputWidth: number;
  inputHeight: number;
}
export type WireDType = 'float32' | 'uint8' | 'int64';

export interface WireTensor {
  type: WireDType;
  data: ArrayBuffer;
  byteOffset: number;
  length: number;
  dims: number[];
}

export interface SessionSettings {
  intraOpThreads: number;
  interOpThreads: number;
  graphOptimization: 'disabled' | 'basic' | 'extended' | 'all';
  executionProviders: string[];
  allowSpinning: boolean;
}

export type WorkerRequest =
  | { op: 'load'; id: number; model: ArrayBuffer; settings: SessionSettings; detection?: DetectionSpec | undefined }
  | { op: 'run'; id: number; feeds: Record<string, WireTensor>; outputs: string[]; geometry?: Geometry | undefined }
  | { op: 'release'; id: number };

export interface LoadInfo {
  inputNames: string[];
  outputNames: string[];
  executionProvider: string;
  fallbackReason?: string;
}

export type WorkerResponse =
  | {
      id: number;
      ok: true;
      load?: LoadInfo;
      outputs?: Record<string, WireTensor>;
      runMs?: number;
      /** A detector's boxes in original-image pixels, decoded and NMS'd in the worker (the run had a geometry). */
      detections?: RawDetection[];
      decodeMs?: number;
      /** Milliseconds the worker held the request, from its receipt to its reply (run included). */
      busyMs?: number;
      /** The run's input buffers, transferred back for the next request to fill (see InferencePool.allocate). */
      returned?: ArrayBuffer[];
    }
  | { id: number; ok: false; error: { message: string; code?: string } };

export function toWire(type: WireDType, arr: Float32Array | Uint8Array | BigInt64Array, dims: number[]): WireTensor {
  return { type, data: arr.buffer as ArrayBuffer, byteOffset: arr.byteOffset, length: arr.length, dims };
}

export function fromWire(t: WireTensor): Float32Array | Uint8Array | BigInt64Array {
  if (t.type === 'float32') return new Float32Array(t.data, t.byteOffset, t.length);
  if (t.type === 'uint8') return new Uint8Array(t.data, t.byteOffset, t.length);
  return new BigInt64Array(t.data, t.byteOffset, t.length);
}
