/** Shared helpers for running generated models in the real onnxruntime-node. */
import '../../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import { InferenceSession, Tensor } from 'onnxruntime-node';

/** Loads model bytes the way the agent does: from an in-memory buffer. */
export function loadSession(bytes: Uint8Array): Promise<InferenceSession> {
  return InferenceSession.create(Buffer.from(bytes));
}

/** Runs a single-input model and returns the named output as a float array with its dims. */
export async function runOnce(
  session: InferenceSession,
  input: { name: string; type: 'float32' | 'uint8'; data: Float32Array | Uint8Array; dims: number[] },
  outputName: string,
): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const result = await session.run({ [input.name]: new Tensor(input.type, input.data, input.dims) });
  const out = result[outputName];
  if (!out) throw new Error(`model has no output ${outputName}; got ${Object.keys(result).join(', ')}`);
  return { data: out.data as Float32Array, dims: out.dims };
}

/** Index of the largest value in `values[offset, offset + n)`, relative to `offset`. */
export function argmaxAt(values: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if ((values[offset + i] as number) > (values[offset + best] as number)) best = i;
  return best;
}
