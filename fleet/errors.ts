import { EdgeloopError, SharedErrors } from '../shared/errors.js';

/** The fleet's error catalogue; model/input codes are shared with the agent (no prefix). */
export const FleetErrors = {
  USAGE: { status: 400, text: 'invalid command-line usage' },
  INPUT_INVALID: { status: 400, text: 'input is invalid' },
  MODEL_PACKAGE_INVALID: { status: 422, text: 'model package is invalid' },
  PACK_FAILED: { status: 422, text: 'cannot build the model package' },
  KEY_INVALID: { status: 500, text: 'signing key cannot be read' },
  NOT_FOUND: { status: 404, text: 'not found' },
} as const;

export type FleetErrorCode = keyof typeof FleetErrors;

export class FleetError extends EdgeloopError {
  constructor(code: FleetErrorCode, message?: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    const entry = FleetErrors[code];
    super(code in SharedErrors ? code : `FLEET_${code}`, message ?? entry.text, { status: entry.status, ...opts });
    this.name = 'FleetError';
  }
}
