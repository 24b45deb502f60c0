import { EdgeloopError, ExitCode, SharedErrors, defineCatalogue, type ErrorOptions, type WireCodeOf } from '../shared/errors.js';

/**
 * The fleet's error catalogue; model/input codes are shared with the agent (no prefix),
 * every other code is sent as `FLEET_<CODE>`. `status` is the HTTP status the API answers with,
 * `exit` (default 1) the CLI's exit code.
 */
export const FleetErrors = defineCatalogue('FLEET', {
  /** Bad usage of the fleet CLI found by its own checks (a missing flag, flags that do not go together; a `--dry-run` fleet asked to train on SageMaker); flags that do not parse are the shared `USAGE`. */
  USAGE: { status: 400, exit: ExitCode.USAGE, text: 'invalid command-line usage' },
  INPUT_INVALID: SharedErrors.INPUT_INVALID,
  MODEL_PACKAGE_INVALID: SharedErrors.MODEL_PACKAGE_INVALID,
  MODEL_HASH_MISMATCH: SharedErrors.MODEL_HASH_MISMATCH,
  SAMPLE_CHUNK_INVALID: SharedErrors.SAMPLE_CHUNK_INVALID,
  SAMPLE_HASH_MISMATCH: SharedErrors.SAMPLE_HASH_MISMATCH,
  SAMPLE_TOO_LARGE: SharedErrors.SAMPLE_TOO_LARGE,
  SAMPLE_RATE_LIMITED: SharedErrors.SAMPLE_RATE_LIMITED,
  /** `edgeloop pack` (or `packModel`, which the local trainer calls too) cannot build the package: the ONNX file, the labels or a golden input does not fit. A CLI error or a failed run's error, never an HTTP answer. */
  PACK_FAILED: { status: 422, text: 'cannot build the model package' },
  /** `edgeloop pack`: a symbolic (dynamic) dim of the model's input is neither fixed in the model, nor given by a flag (`--width`, `--height`, `--channels`, `--dim NAME=N`), nor recorded in the model's metadata; `details` names the dim and the flag that sets it. */
  PACK_DIM_UNRESOLVED: { status: 422, text: 'a symbolic input dim has no size' },
  /** `edgeloop pack`: a flag would have no effect or contradicts the model (image flags for a model whose input is not an image, a `--width` other than the model's fixed width, `--dim` naming no symbolic dim, three `--mean` values for a grayscale input). Refused rather than ignored. */
  PACK_FLAG_UNUSED: { status: 422, text: 'a pack flag does not apply to this model' },
  /** `edgeloop pack --task detection`: the decoder cannot read the model's outputs (a YOLO head whose class dim differs from the labels, a shape that fits several YOLO layouts without `--yolo-layout`, no boxes or scores output, outputs the decoder fails on when run); the message lists the outputs found. */
  /** `edgeloop pack --baseline`: none of the reference files is an image the model can read. */
  PACK_BASELINE_EMPTY: { status: 422, text: 'no usable reference image for the drift baseline' },
  PACK_DECODER_MISMATCH: { status: 422, text: "the detection decoder does not fit the model's outputs" },
  /** A golden input given to `edgeloop pack` with an expected label (`--golden FILE=LABEL`) that is not one of the labels, or that the model does not predict for it: the message names the file, the expected and the predicted label, and the preprocessing flags to check (`--invert`, `--color`, `--scale`, `--mean`/`--std`, `--softmax`). */
  GOLDEN_MISMATCH: { status: 422, text: 'a golden input does not give its expected label' },
  /** `edgeloop models push` or `POST /v1/models` of a package without golden inputs: no device could smoke-test it before switching. Repack with `--golden FILE=LABEL`, or push with `--force` (`?force=true`). */
  GOLDEN_MISSING: { status: 422, text: 'the package has no golden inputs' },
  KEY_INVALID: { status: 500, text: 'signing key cannot be read' },
  NOT_FOUND: { status: 404, text: 'not found' },
  /** A missing or invalid bearer token, or device credentials (MQTT password, HTTP bearer token) that do not authenticate. Never says which part was wrong. */
  AUTH_FAILED: { status: 401, text: 'authentication failed' },
  /** Too many failed logins from this address or as this device: refused without checking until the backoff passes (`details.retry_after_ms`); known-good credentials are not held up. */
  AUTH_THROTTLED: { status: 429, text: 'too many failed logins; retry later' },
  /** The role does not allow the call (a labeler creating a rollout). */
  FORBIDDEN: { status: 403, text: 'the role does not allow this' },
  /** A rollout plan with a shadow stage to devices none of which runs a model yet: there is nothing to run the candidate beside. Create it without `--shadow` for a first deploy. */
  ROLLOUT_SHADOW_EMPTY: { status: 409, text: 'no target device runs a model the candidate could shadow' },
  /** A rollout command that does not apply in the rollout's state, or a second active rollout to the same target. */
  CONFLICT: { status: 409, text: 'the request conflicts with the current state' },
  /** `users revoke` / the API named a user that does not exist. */
  USER_NOT_FOUND: { status: 404, text: 'no such user' },
  /** `users add` named a user that exists and is not revoked: revoke it first (tokens are never replaced silently). */
  USER_EXISTS: { status: 409, text: 'a user with this name exists' },
  /** A device asked for a model package its desired state does not name (active, shadow, or the previous one it may roll back to). */
  PACKAGE_NOT_ASSIGNED: { status: 403, text: 'this package is not in the device\'s desired state' },
  /** An uploaded model package archive cannot be unpacked: not a tar, a name leaving the package (`..`, absolute), a link or device entry, too many entries. Size caps answer `PAYLOAD_TOO_LARGE`. */
  UPLOAD_INVALID: { status: 400, text: 'the uploaded package archive is invalid' },
  DEVICE_UNKNOWN: { status: 404, text: 'no such device' },
  /** Device ids are unique: a device with this id is already registered. */
  DEVICE_EXISTS: { status: 409, text: 'a device with this id is already registered' },
  /** The fleet CA (`serve --ca-cert/--ca-key`, or `DATA/keys/ca.*.pem`) cannot be used: a file is unreadable or not PEM, the certificate is not a CA or has expired, the key does not match it, or its key type cannot sign. The service does not start: never an HTTP answer. */
  CA_INVALID: { status: 500, text: 'the fleet CA cannot be used' },
  /** A device's TLS connection to the broker was refused: a certificate of another CA, expired, revoked or replaced (its sha256 is not the one stored), of an unknown device, or a client id other than the certificate's CN. Logged with the reason at connect and throttled like failed logins; never an HTTP answer. */
  DEVICE_CERT_REFUSED: { status: 401, text: 'the device certificate was refused' },
  /** A device public key sent for a certificate is not a PEM public key of a type the fleet CA signs for (EC P-256/P-384, RSA of 2048 bits or more, Ed25519). */
  DEVICE_KEY_INVALID: { status: 400, text: 'the device public key cannot be certified' },
  /** Desired states could not be handed to the rollout backend (broker down, AWS throttling); logged with the retry delay, retried with backoff until delivered. */
  DELIVERY_FAILED: { status: 503, text: 'desired states could not be delivered; retrying' },
  /** An MQTT packet over the embedded broker's size limit (`broker.max_packet_bytes`); the connection is closed at the packet's header. */
  MQTT_PACKET_TOO_LARGE: { status: 413, text: 'MQTT packet is over the broker size limit' },
  /** A sample's meta names another device than the one that sent it. */
  SAMPLE_DEVICE_MISMATCH: { status: 403, text: 'a device may only send its own samples' },
  SAMPLE_NOT_FOUND: { status: 404, text: 'no such sample' },
  /** No alert has this id. */
  ALERT_NOT_FOUND: { status: 404, text: 'no such alert' },
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
  /** The trainer failed, produced no valid package, or wrote another name/version; the run is recorded as failed with this error. */
  TRAINING_FAILED: { status: 500, text: 'the training run failed' },
  /** A trainer ran past its time limit (a `command` trainer's `timeoutMs`) and was stopped: its process group gets SIGTERM, then SIGKILL after a grace. */
  TRAINING_TIMEOUT: { status: 504, text: 'the training run timed out' },
  /** A training run was cancelled (AbortSignal: Ctrl-C, service shutdown). */
  TRAINING_ABORTED: { status: 499, text: 'the training run was aborted' },
  /** The trainer finished but its output directory is not a valid model package; every problem is listed (manifest schema, name/version, labels, a missing file or sha256 mismatch, ONNX Runtime refusing the model). */
  TRAINING_OUTPUT_INVALID: { status: 422, text: 'the trainer output is not a valid model package' },
  TRAINING_RUN_NOT_FOUND: { status: 404, text: 'no such training run' },
  /** The learning loop's configuration file (`serve --training`) is missing, not JSON, or has bad keys (all named, trainers the mode cannot build included). */
  TRAINING_CONFIG_INVALID: { status: 400, text: 'the training configuration is invalid' },
  /** The limits file (`serve --limits`) is missing, not JSON, or has bad keys (all named). */
  LIMITS_CONFIG_INVALID: { status: 400, text: 'the limits configuration is invalid' },
  /** A model could not be evaluated on the holdouts (ORT refused it, an input did not decode). */
  EVALUATION_FAILED: { status: 422, text: 'the model could not be evaluated' },
  /** A base training set reference cannot be resolved or no longer matches its recorded content hash. */
  BASE_SET_INVALID: { status: 422, text: 'the base training set reference is invalid' },
  /** The fleet database or artifact store failed (disk full, I/O error, schema from a newer fleet). */
  STORAGE_FAILED: { status: 507, text: 'fleet storage failed' },
  /** The AWS mode's configuration file (`--aws-config`) is missing, not JSON, or has bad keys (all named). */
  AWS_CONFIG_INVALID: { status: 400, text: 'the AWS configuration is invalid' },
  /** The fleet could not connect to its MQTT broker at start (a TLS refusal such as an unknown CA, bad credentials, not authorized): the message names the broker URL and the reason, which are logged too; `cause` has the client error. The service does not start: never an HTTP answer. */
  BROKER_CONNECT_FAILED: { status: 502, text: 'cannot connect to the MQTT broker' },
  /** A request derived from a rollout plan would break a documented AWS limit, a device id is not a valid thing name, or training parameters do not fit SageMaker's hyperparameter limits; nothing was sent. */
  AWS_LIMIT_EXCEEDED: { status: 422, text: 'the request would exceed a documented AWS limit' },
  /** An AWS API call failed (throttled past retries, access denied, service error); the message names the command, `cause` has the SDK error. */
  AWS_CALL_FAILED: { status: 502, text: 'an AWS API call failed' },
  /** A SageMaker Neo compilation job ended FAILED or STOPPED (training jobs fail as TRAINING_FAILED, like every trainer). */
  AWS_JOB_FAILED: { status: 502, text: 'a SageMaker Neo compilation job did not complete' },
});

export type FleetErrorCode = keyof typeof FleetErrors;
/** Every code the fleet's catalogue sends (`FLEET_DEVICE_UNKNOWN`, `INPUT_INVALID`...). */
export type FleetWireCode = WireCodeOf<typeof FleetErrors>;

export class FleetError extends EdgeloopError {
  constructor(code: FleetErrorCode, message?: string, opts: ErrorOptions = {}) {
    const entry = FleetErrors[code];
    super(entry.code, message ?? entry.text, { status: entry.status, exit: entry.exit, ...opts });
    this.name = 'FleetError';
  }
}
