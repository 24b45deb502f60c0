/**
 * Base of both error catalogues (agent/errors.ts, fleet/errors.ts).
 *
 * Every error that crosses a boundary carries a stable `code` (documented in the README),
 * an HTTP status where one applies, and the underlying `cause`. Core code throws these;
 * one handler per edge (HTTP, CLI, MQTT) turns them into answers and log lines.
 */
export class EdgeloopError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, opts: { status?: number; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'EdgeloopError';
    this.code = code;
    this.status = opts.status ?? 500;
    this.details = opts.details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isEdgeloopError(err: unknown): err is EdgeloopError {
  return err instanceof EdgeloopError;
}

/** One line for humans: `CODE: message`. */
export function errorLine(err: unknown): string {
  if (isEdgeloopError(err)) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `INTERNAL: ${err.message}`;
  return `INTERNAL: ${String(err)}`;
}

/**
 * Codes shared by both sides: anything about a model package or an input that the agent
 * and the fleet (evaluation, packing) both meet. No side prefix: `MODEL_SIGNATURE_INVALID`
 * means the same on a device and in the fleet. Side-specific codes carry `AGENT_` / `FLEET_`.
 */
export const SharedErrors = {
  INPUT_INVALID: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IMAGE_DECODE_FAILED: 422,
  TENSOR_SHAPE_MISMATCH: 422,
  MODEL_PACKAGE_INVALID: 422,
  MODEL_HASH_MISMATCH: 422,
  MODEL_SIGNATURE_INVALID: 422,
  MODEL_LOAD_FAILED: 422,
  MODEL_SMOKE_TEST_FAILED: 422,
  /** A sample chunk on the wire is malformed, or the reassembled blob does not match its sha256. */
  SAMPLE_CHUNK_INVALID: 422,
  SAMPLE_HASH_MISMATCH: 422,
} as const;
export type SharedErrorCode = keyof typeof SharedErrors;

export function sharedError(code: SharedErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}): EdgeloopError {
  return new EdgeloopError(code, message, { status: SharedErrors[code], ...opts });
}

/**
 * The wire code of a side's catalogue entry: shared model/input codes carry no prefix (they
 * mean the same on a device and in the fleet), everything else gets the side's prefix.
 */
export function sideCode(prefix: 'AGENT' | 'FLEET', code: string): string {
  return code in SharedErrors ? code : `${prefix}_${code}`;
}
