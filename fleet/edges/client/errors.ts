import { EdgeloopError, ExitCode, SharedErrors, defineCatalogue, entriesByCode, type ErrorOptions } from '../../../shared/errors.js';
import { FleetErrors } from '../../errors.js';

/**
 * Failures that happen on the caller's side of the HTTP API, before or after the server
 * answered, so never an HTTP answer themselves. Everything the server refuses keeps the
 * server's own code (`FLEET_FORBIDDEN`, `INPUT_INVALID`...): the client never renames an answer.
 */
export const ClientErrors = defineCatalogue('FLEET', {
  /** No URL known, connection refused, DNS failure, timeout: the request never got an answer. */
  UNREACHABLE: { status: 503, text: 'the fleet service cannot be reached' },
  /** The server answered something the API's schemas do not allow (another fleet version?). */
  RESPONSE_INVALID: { status: 502, text: 'the fleet service sent an unexpected response' },
});

export type ClientErrorCode = keyof typeof ClientErrors;

const KNOWN = entriesByCode(SharedErrors, FleetErrors, ClientErrors);

/** The CLI exit code for a code the service answered: its catalogue entry's (a newer server's unknown code is a failure). */
export function exitCodeForCode(code: string): ExitCode {
  return KNOWN.get(code)?.exit ?? ExitCode.FAILURE;
}

export class FleetClientError extends EdgeloopError {
  constructor(code: ClientErrorCode, message?: string, opts: ErrorOptions = {}) {
    const entry = ClientErrors[code];
    super(entry.code, message ?? entry.text, { status: entry.status, exit: entry.exit, ...opts });
    this.name = 'FleetClientError';
  }
}
