/**
 * The error catalogue's base: the error class, the entry shape, and the codes both sides share.
 * Each side keeps its own catalogue (agent/errors.ts, fleet/errors.ts, fleet/client/errors.ts),
 * built with {@link defineCatalogue}; it references the shared entries below, never copies them.
 * docs/errors.md is generated from these catalogues (`npm run docs`).
 *
 * Every error that crosses a boundary carries a stable `code`, the HTTP status an API answers
 * it with, the exit code a CLI ends with, and the underlying `cause`. Core code throws these;
 * one handler per edge (HTTP, CLI, MQTT) turns them into answers and log lines.
 */

/**
 * CLI exit codes: 0 success, 1 a failure, 2 bad usage (the shell's convention: bash and the
 * POSIX utilities exit 2 on a usage error). An error's exit code comes from its catalogue
 * entry, apart from its HTTP status.
 */
export const ExitCode = { OK: 0, FAILURE: 1, USAGE: 2 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * A catalogue entry as a catalogue writes it: the HTTP status, the one-line text (the default
 * message), the CLI exit code (default {@link ExitCode.FAILURE}) and, only where the wire code
 * is not derived from the key, the code itself.
 */
export interface EntrySpec {
  readonly status: number;
  readonly text: string;
  readonly exit?: ExitCode;
  readonly code?: string;
}

/** A resolved catalogue entry: wire code, HTTP status, CLI exit code, one-line text. */
export interface CatalogueEntry<C extends string = string> {
  readonly code: C;
  readonly status: number;
  readonly exit: ExitCode;
  readonly text: string;
}

type WireCode<P extends string, K extends string, E> = E extends { readonly code: infer C extends string } ? C : P extends '' ? K : `${P}_${K}`;

/** A catalogue keyed by its short names; each entry's `code` is typed as its exact wire code. */
export type Catalogue<P extends string, T> = { readonly [K in keyof T]: CatalogueEntry<WireCode<P, K & string, T[K]>> };

/** Every wire code a catalogue can produce. */
export type WireCodeOf<C> = C[keyof C] extends CatalogueEntry<infer W> ? W : never;

const isResolved = (e: EntrySpec): e is CatalogueEntry => e.code !== undefined && e.exit !== undefined;

/**
 * Resolve a catalogue. An entry that is already resolved (a shared entry a side references)
 * is kept as it is, the same object; any other entry gets the wire code `<PREFIX>_<KEY>` (the
 * key alone with an empty prefix) unless it names its code, and exit code 1 unless it names one.
 */
export function defineCatalogue<const P extends string, const T extends Record<string, EntrySpec>>(prefix: P, entries: T): Catalogue<P, T> {
  const out: Record<string, CatalogueEntry> = {};
  for (const [key, e] of Object.entries(entries)) {
    out[key] = isResolved(e) ? e : Object.freeze({ code: e.code ?? (prefix ? `${prefix}_${key}` : key), status: e.status, exit: e.exit ?? ExitCode.FAILURE, text: e.text });
  }
  return Object.freeze(out) as Catalogue<P, T>;
}

/** Wire code -> entry over several catalogues (a client that reads codes off the wire). */
export function entriesByCode(...catalogues: ReadonlyArray<Readonly<Record<string, CatalogueEntry>>>): ReadonlyMap<string, CatalogueEntry> {
  return new Map(catalogues.flatMap((c) => Object.values(c).map((e) => [e.code, e] as const)));
}

export interface ErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class EdgeloopError extends Error {
  readonly code: string;
  readonly status: number;
  readonly exit: ExitCode;
  readonly details: Record<string, unknown> | undefined;

  /**
   * Prefer a catalogue's constructor (AgentError, FleetError, {@link sharedError}), which types
   * the code and takes status and exit code from the entry; this one also serves errors read
   * off the wire, whose code may come from another version.
   */
  constructor(code: string, message: string, opts: ErrorOptions & { status?: number; exit?: ExitCode } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'EdgeloopError';
    this.code = code;
    this.status = opts.status ?? 500;
    this.exit = opts.exit ?? ExitCode.FAILURE;
    this.details = opts.details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isEdgeloopError(err: unknown): err is EdgeloopError {
  return err instanceof EdgeloopError;
}

/**
 * Codes shared by both sides: anything about a model package or an input that the agent
 * and the fleet (evaluation, packing) both meet, command-line usage, and the internal error.
 * No side prefix: `MODEL_SIGNATURE_INVALID` means the same on a device and in the fleet.
 * Side-specific codes carry `AGENT_` / `FLEET_`.
 */
export const SharedErrors = defineCatalogue('', {
  /** A malformed request, JSON document or message, or tensor values that are not finite numbers; unknown keys where a schema is strict. */
  INPUT_INVALID: { status: 400, text: 'input is invalid' },
  /** A request body or message above its limit (the agent's `http.max_body_bytes`, the fleet API's body limit, a sample whose meta alone fills an uplink message). */
  PAYLOAD_TOO_LARGE: { status: 413, text: 'payload too large' },
  /** The content type, or the image format (GIF, TIFF...), is not supported. */
  UNSUPPORTED_MEDIA_TYPE: { status: 415, text: 'content type is not supported' },
  /** A corrupt, truncated or empty image, or bytes that are not JPEG, PNG or WebP. */
  IMAGE_DECODE_FAILED: { status: 422, text: 'image could not be decoded' },
  /** The wrong number of values or shape for the model input. */
  TENSOR_SHAPE_MISMATCH: { status: 422, text: 'tensor does not match the model input' },
  /** The manifest is missing, invalid or inconsistent with the ONNX file, or a listed file is missing; `details.problems` names each broken rule (shared/package/README.md), the same on a device, at push and for a trainer's output. */
  MODEL_PACKAGE_INVALID: { status: 422, text: 'model package is invalid' },
  /** A package file differs from the sha256 (or size) its manifest lists (every problem found is such a file). */
  MODEL_HASH_MISMATCH: { status: 422, text: 'a model file does not match its sha256' },
  /** The package is unsigned, was changed after signing, or is signed by another key (500 when the configured public key itself cannot be read). */
  MODEL_SIGNATURE_INVALID: { status: 422, text: 'model package signature is missing or invalid' },
  /** ONNX Runtime refuses the model file. */
  MODEL_LOAD_FAILED: { status: 422, text: 'ONNX Runtime could not load the model' },
  /** The package's golden inputs do not give the expected labels (with at least their `min_score`): the on-device smoke test. */
  MODEL_SMOKE_TEST_FAILED: { status: 422, text: 'golden inputs did not give the expected outputs' },
  /** A sample chunk on the wire is malformed. */
  SAMPLE_CHUNK_INVALID: { status: 422, text: 'a sample chunk is malformed' },
  /** A reassembled sample blob does not match its sha256. */
  SAMPLE_HASH_MISMATCH: { status: 422, text: 'a sample blob does not match its sha256' },
  /** A sample above the fleet's per-sample limit (`meta.input.bytes` over `ingest.max_sample_bytes`), or one device's unfinished chunk sets above their byte budget. Nacked: the device keeps the sample and retries it later. */
  SAMPLE_TOO_LARGE: { status: 413, text: 'sample is larger than the fleet accepts' },
  /** A device sent sample messages faster than its rate limit, or above its daily byte quota; the nack's `retry_after_ms` says when to try again. The device keeps its samples and pauses its drain. */
  SAMPLE_RATE_LIMITED: { status: 429, text: 'the device sends samples faster than its limit allows' },
  /** Bad command-line usage: an unknown command or flag, a flag value of the wrong kind. The fleet CLI's own checks answer `FLEET_USAGE`. */
  USAGE: { status: 400, exit: ExitCode.USAGE, text: 'invalid command-line usage' },
  /** Anything thrown that is not a catalogued error (a bug); the HTTP answer says only `internal error`, the details stay in the log. */
  INTERNAL: { status: 500, text: 'internal error' },
});
export type SharedErrorCode = keyof typeof SharedErrors;

/** An EdgeloopError for a catalogue entry, with the entry's text as the default message. */
export function errorOf(entry: CatalogueEntry, message?: string, opts: ErrorOptions & { status?: number } = {}): EdgeloopError {
  return new EdgeloopError(entry.code, message ?? entry.text, { status: entry.status, exit: entry.exit, ...opts });
}

/**
 * An error with a shared code. `status` overrides the entry's HTTP status for the rare throw
 * site that knows the answer better (a configured key that cannot be read is the server's
 * fault, 500); the exit code stays the entry's.
 */
export function sharedError(code: SharedErrorCode, message?: string, opts: ErrorOptions & { status?: number } = {}): EdgeloopError {
  return errorOf(SharedErrors[code], message, opts);
}

/**
 * Names the error a shared helper (`parseWith`) throws: a shared code, or a side's catalogue
 * entry (shared/ cannot import a side's catalogue, so the side hands over the entry itself).
 */
export type ErrorRef = SharedErrorCode | CatalogueEntry;

export const entryOf = (ref: ErrorRef): CatalogueEntry => (typeof ref === 'string' ? SharedErrors[ref] : ref);

/** The exit code a CLI ends with for `err`: its catalogue entry's, or INTERNAL's for anything else. */
export function exitCodeOf(err: unknown): ExitCode {
  return isEdgeloopError(err) ? err.exit : SharedErrors.INTERNAL.exit;
}

/** One line for humans: `CODE: message`. */
export function errorLine(err: unknown): string {
  if (isEdgeloopError(err)) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${SharedErrors.INTERNAL.code}: ${err.message}`;
  return `${SharedErrors.INTERNAL.code}: ${String(err)}`;
}
