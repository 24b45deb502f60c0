import { AgentError } from '../errors.js';
import type { AgentErrorCode } from '../errors.js';
import { EdgeloopError, SharedErrors, sharedError, type SharedErrorCode } from '../../shared/errors.js';

/**
 * Uplink failure kinds, each with its catalogue code; `details.uplink` names the kind so
 * callers (the forwarder's retry logic) can branch on it without parsing messages.
 */
export type UplinkFailure =
  | 'disconnected'
  | 'publish_failed'
  | 'closed'
  | 'subscribe_refused'
  | 'message_too_large'
  | 'chunk_invalid'
  | 'sample_hash_mismatch';

const CODES: Record<UplinkFailure, AgentErrorCode | SharedErrorCode> = {
  disconnected: 'UPLINK_DISCONNECTED',
  publish_failed: 'UPLINK_PUBLISH_FAILED',
  closed: 'UPLINK_CLOSED',
  subscribe_refused: 'UPLINK_SUBSCRIBE_REFUSED',
  message_too_large: 'UPLINK_MESSAGE_TOO_LARGE',
  chunk_invalid: 'SAMPLE_CHUNK_INVALID',
  sample_hash_mismatch: 'SAMPLE_HASH_MISMATCH',
};

/** An AgentError for an uplink failure; `details.uplink` carries the precise kind. */
export function uplinkError(kind: UplinkFailure, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}): EdgeloopError {
  const code = CODES[kind];
  const o = { cause: opts.cause, details: { uplink: kind, ...opts.details } };
  return code in SharedErrors ? sharedError(code as SharedErrorCode, message, o) : new AgentError(code as AgentErrorCode, message, o);
}

/** The uplink failure kind of an error made by {@link uplinkError} (or the sample assembler), or undefined. */
export function uplinkFailureOf(err: unknown): UplinkFailure | undefined {
  if (!(err instanceof EdgeloopError)) return undefined;
  const kind = err.details?.uplink;
  return typeof kind === 'string' && kind in CODES ? (kind as UplinkFailure) : undefined;
}
