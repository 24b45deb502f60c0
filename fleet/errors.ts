import { EdgeloopError, sideCode } from '../shared/errors.js';

/**
 * The fleet's error catalogue; model/input codes are shared with the agent (no prefix),
 * every other code is sent as `FLEET_<CODE>`. `status` is the HTTP status the API answers with.
 */
export const FleetErrors = {
  USAGE: { status: 400, text: 'invalid command-line usage' },
  INPUT_INVALID: { status: 400, text: 'input is invalid' },
  MODEL_PACKAGE_INVALID: { status: 422, text: 'model package is invalid' },
  MODEL_HASH_MISMATCH: { status: 422, text: 'a model file does not match its sha256' },
  SAMPLE_CHUNK_INVALID: { status: 422, text: 'a sample chunk is malformed' },
  SAMPLE_HASH_MISMATCH: { status: 422, text: 'a sample blob does not match its sha256' },
  PACK_FAILED: { status: 422, text: 'cannot build the model package' },
  KEY_INVALID: { status: 500, text: 'signing key cannot be read' },
  NOT_FOUND: { status: 404, text: 'not found' },
  /** Authentication of a device (MQTT password, HTTP bearer token) failed. Never says which part was wrong. */
  AUTH_FAILED: { status: 401, text: 'authentication failed' },
  FORBIDDEN: { status: 403, text: 'the role does not allow this' },
  CONFLICT: { status: 409, text: 'the request conflicts with the current state' },
  DEVICE_UNKNOWN: { status: 404, text: 'no such device' },
  DEVICE_EXISTS: { status: 409, text: 'a device with this id is already registered' },
  /** A sample's meta names another device than the one that sent it. */
  SAMPLE_DEVICE_MISMATCH: { status: 403, text: 'a device may only send its own samples' },
  SAMPLE_NOT_FOUND: { status: 404, text: 'no such sample' },
  /** name@version exists with different content: model versions are immutable. */
  MODEL_VERSION_EXISTS: { status: 409, text: 'this model version exists with different content' },
  MODEL_NOT_FOUND: { status: 404, text: 'no such model version' },
  DATASET_NOT_FOUND: { status: 404, text: 'no such dataset version' },
  ARTIFACT_NOT_FOUND: { status: 404, text: 'no such artifact' },
  /** Bytes written to the artifact store do not hash to what the caller said they would. */
  ARTIFACT_HASH_MISMATCH: { status: 422, text: 'artifact content does not match its sha256' },
  /** The learning loop has no training configuration for this model (or no loop runs). */
  TRAINING_NOT_CONFIGURED: { status: 404, text: 'no training is configured for this model' },
  /** A training run of the model is already running: one at a time per model. */
  TRAINING_IN_PROGRESS: { status: 409, text: 'a training run of this model is already running' },
  TRAINER_UNKNOWN: { status: 400, text: 'no such trainer' },
  /** The trainer failed or produced no valid package; the run is recorded as failed with this error. */
  TRAINING_FAILED: { status: 500, text: 'the training run failed' },
  /** A trainer ran past its time limit and was stopped. */
  TRAINING_TIMEOUT: { status: 504, text: 'the training run timed out' },
  /** A training run was cancelled (AbortSignal: Ctrl-C, service shutdown). */
  TRAINING_ABORTED: { status: 499, text: 'the training run was aborted' },
  /** The trainer finished but its output directory is not a valid model package (manifest, hashes, ONNX). */
  TRAINING_OUTPUT_INVALID: { status: 422, text: 'the trainer output is not a valid model package' },
  TRAINING_RUN_NOT_FOUND: { status: 404, text: 'no such training run' },
  /** The learning loop's configuration file (`serve --training`) is missing, not JSON, or has bad keys (all named). */
  TRAINING_CONFIG_INVALID: { status: 400, text: 'the training configuration is invalid' },
  /** A model could not be evaluated on the holdouts (ORT refused it, an input did not decode). */
  EVALUATION_FAILED: { status: 422, text: 'the model could not be evaluated' },
  /** A base training set reference cannot be resolved or no longer matches its recorded content hash. */
  BASE_SET_INVALID: { status: 422, text: 'the base training set reference is invalid' },
  /** The fleet database or artifact store failed (disk full, I/O error, schema from a newer fleet). */
  STORAGE_FAILED: { status: 507, text: 'fleet storage failed' },
  /** The AWS mode's configuration file is missing, not JSON, or has bad keys (all named). */
  AWS_CONFIG_INVALID: { status: 400, text: 'the AWS configuration is invalid' },
  /** The fleet could not connect to its MQTT broker at start (a TLS refusal such as an unknown CA, bad credentials); `cause` has the client error. */
  BROKER_CONNECT_FAILED: { status: 502, text: 'cannot connect to the MQTT broker' },
  /** A request derived from a rollout plan would break a documented AWS limit; nothing was sent. */
  AWS_LIMIT_EXCEEDED: { status: 422, text: 'the request would exceed a documented AWS limit' },
  /** An AWS API call failed (throttled past retries, access denied, service error); `cause` has the SDK error. */
  AWS_CALL_FAILED: { status: 502, text: 'an AWS API call failed' },
  /** A SageMaker Neo compilation job ended FAILED or STOPPED (training jobs fail as TRAINING_FAILED, like every trainer). */
  AWS_JOB_FAILED: { status: 502, text: 'a SageMaker Neo compilation job did not complete' },
} as const;

export type FleetErrorCode = keyof typeof FleetErrors;

export class FleetError extends EdgeloopError {
  constructor(code: FleetErrorCode, message?: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    const entry = FleetErrors[code];
    super(sideCode('FLEET', code), message ?? entry.text, { status: entry.status, ...opts });
    this.name = 'FleetError';
  }
}
