import { AgentError } from '../errors.js';
import type { AgentErrorCode } from '../errors.js';

/**
 * Uplink failure kinds. The agent catalogue (agent/errors.ts) has no uplink entries yet
 * besides `UPLINK_MESSAGE_TOO_LARGE`, so each kind maps to the closest existing code and
 * names itself in `details.uplink`. Proposed catalogue additions, so this map becomes the
 * identity: UPLINK_DISCONNECTED (503), UPLINK_PUBLISH_FAILED (502), UPLINK_CLOSED (503), UPLINK_SUBSCRIBE_REFUSED (500),
 * UPLINK_CHUNK_INVALID (422), UPLINK_SAMPLE_HASH_MISMATCH (422).
 */
export type UplinkFailure =
  | 'disconnected'
  | 'publish_failed'
  | 'closed'
  | 'subscribe_refused'
  | 'message_too_large'
  | 'chunk_invalid'
  | 'sample_hash_mismatch';

const CLOSEST: Record<UplinkFailure, AgentErrorCode> = {
  // 503 "shut down / unavailable" is the nearest meaning the catalogue has for "no connection".
  disconnected: 'ENGINE_CLOSED',
  publish_failed: 'ENGINE_CLOSED',
  closed: 'ENGINE_CLOSED',
  subscribe_refused: 'CONFIG_INVALID',
  message_too_large: 'UPLINK_MESSAGE_TOO_LARGE',
  chunk_invalid: 'INPUT_INVALID',
  sample_hash_mismatch: 'INPUT_INVALID',
};

/** An AgentError for an uplink failure; `details.uplink` carries the precise kind. */
export function uplinkError(kind: UplinkFailure, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}): AgentError {
  return new AgentError(CLOSEST[kind], message, { cause: opts.cause, details: { uplink: kind, ...opts.details } });
}

/** The uplink failure kind of an error made by {@link uplinkError}, or undefined. */
export function uplinkFailureOf(err: unknown): UplinkFailure | undefined {
  if (!(err instanceof AgentError)) return undefined;
  const kind = err.details?.uplink;
  return typeof kind === 'string' && kind in CLOSEST ? (kind as UplinkFailure) : undefined;
}
