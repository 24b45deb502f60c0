import { EdgeloopError } from '../../../shared/errors.js';

/**
 * Failures that happen on the caller's side of the HTTP API, before or after the server
 * answered. Everything the server refuses keeps the server's own code (`FLEET_FORBIDDEN`,
 * `INPUT_INVALID`...): the client never renames an answer.
 */
export const ClientErrors = {
  /** No URL known, connection refused, DNS failure, timeout: the request never got an answer. */
  UNREACHABLE: { status: 503, text: 'the fleet service cannot be reached' },
  /** The server answered something the API's schemas do not allow (another fleet version?). */
  RESPONSE_INVALID: { status: 502, text: 'the fleet service sent an unexpected response' },
} as const;

export type ClientErrorCode = keyof typeof ClientErrors;

export class FleetClientError extends EdgeloopError {
  constructor(code: ClientErrorCode, message?: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(`FLEET_${code}`, message ?? ClientErrors[code].text, { status: ClientErrors[code].status, ...opts });
    this.name = 'FleetClientError';
  }
}
