import { EdgeloopError, SharedErrors, defineCatalogue, type ErrorOptions, type WireCodeOf } from '../shared/errors.js';

/**
 * The agent's error catalogue. Codes are stable: scripts and the fleet match on them.
 * `status` is the HTTP status the local API answers with, `exit` (default 1) the CLI's exit
 * code. Shared codes are referenced from shared/errors.ts and keep their unprefixed code;
 * the agent's own are sent as `AGENT_<KEY>`.
 */
export const AgentErrors = defineCatalogue('AGENT', {
  /** The configuration is invalid (every bad key named in one error; the agent does not start), or a part is used without the configuration it needs (a deployment on an agent without an uplink). Never an HTTP answer. */
  CONFIG_INVALID: { status: 500, text: 'configuration is invalid' },
  INPUT_INVALID: SharedErrors.INPUT_INVALID,
  /**
   * An inference request on the Greengrass IPC pub/sub input is malformed. The HTTP and local
   * MQTT inputs answer `INPUT_INVALID` for the same fault; this input has always answered
   * `AGENT_INPUT_INVALID`, and components that call it match on that code.
   */
  IPC_REQUEST_INVALID: { code: 'AGENT_INPUT_INVALID', status: 400, text: 'inference request is malformed' },
  IMAGE_DECODE_FAILED: SharedErrors.IMAGE_DECODE_FAILED,
  TENSOR_SHAPE_MISMATCH: SharedErrors.TENSOR_SHAPE_MISMATCH,
  UNSUPPORTED_MEDIA_TYPE: SharedErrors.UNSUPPORTED_MEDIA_TYPE,
  PAYLOAD_TOO_LARGE: SharedErrors.PAYLOAD_TOO_LARGE,
  /** No model is active yet. */
  MODEL_NOT_LOADED: { status: 503, text: 'no model is active' },
  MODEL_PACKAGE_INVALID: SharedErrors.MODEL_PACKAGE_INVALID,
  MODEL_HASH_MISMATCH: SharedErrors.MODEL_HASH_MISMATCH,
  MODEL_SIGNATURE_INVALID: SharedErrors.MODEL_SIGNATURE_INVALID,
  MODEL_LOAD_FAILED: SharedErrors.MODEL_LOAD_FAILED,
  MODEL_SMOKE_TEST_FAILED: SharedErrors.MODEL_SMOKE_TEST_FAILED,
  MODEL_VERSION_UNKNOWN: { status: 404, text: 'model version is not installed' },
  /** A request (`POST /v1/infer?model=NAME`, a message's `model`, a camera's `model`) names a model this agent does not serve; the message lists the ones it does. */
  MODEL_NAME_UNKNOWN: { status: 404, text: 'no model of that name is served' },
  /** `models.initial` lists two packages of the same model name: each name is one slot, so one of them could never serve. */
  /** A desired state for a new model arrived while the device already serves the most model slots its status can list (16): refused and logged, the other models run on. */
  MODEL_SLOTS_FULL: { status: 409, text: 'the device serves as many models as it can' },
  MODEL_NAME_DUPLICATE: { status: 500, text: 'two initial packages have the same model name' },
  INFERENCE_FAILED: { status: 500, text: 'inference failed' },
  /** More than `inference.max_pending` requests are waiting. */
  ENGINE_OVERLOADED: { status: 503, text: 'too many requests are waiting for inference' },
  ENGINE_CLOSED: { status: 503, text: 'the inference engine is shut down' },
  QUEUE_FULL: { status: 507, text: 'the sample queue is full' },
  /** One sample is larger than the whole queue quota (`queue.quota_bytes`). */
  QUEUE_ITEM_TOO_LARGE: { status: 413, text: 'the item is larger than the queue quota' },
  /** Disk full, read-only or corrupt storage (an inference still answers with its result; its capture is counted as failed). */
  STORAGE_FAILED: { status: 507, text: 'local storage failed' },
  UPLINK_MESSAGE_TOO_LARGE: { status: 413, text: 'message exceeds the uplink limit' },
  UPLINK_DISCONNECTED: { status: 503, text: 'the uplink is not connected' },
  UPLINK_PUBLISH_FAILED: { status: 502, text: 'the broker did not accept the message' },
  UPLINK_CLOSED: { status: 503, text: 'the uplink is closed' },
  UPLINK_SUBSCRIBE_REFUSED: { status: 500, text: 'the broker refused a subscription' },
  /** Connected, but a subscription (acks, desired state) was refused or failed: the device cannot hear the fleet. Shown in `/healthz` and telemetry, retried with backoff. */
  UPLINK_DEGRADED: { status: 503, text: 'the uplink is connected but a subscription failed' },
  /** `uplink.tls` names a file that cannot be read or is not PEM (`ca`, `cert`, `key`), or a key that does not match its certificate; the old flat keys `ca_file`, `cert_file`, `key_file` are refused naming the new ones. The agent does not start. */
  UPLINK_TLS_INVALID: { status: 500, text: 'the uplink TLS files cannot be used' },
  /** Only one of `SVCUID` and `AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT` is set. */
  GREENGRASS_ENV_INCOMPLETE: { status: 500, text: 'the Greengrass nucleus environment is incomplete (SVCUID and the IPC socket path go together)' },
  /** The IPC connection to the nucleus was refused, or an IPC call failed. */
  GREENGRASS_IPC_FAILED: { status: 503, text: 'a Greengrass IPC call to the nucleus failed' },
  /** The component configuration does not validate (every bad key named; a deployment is answered REJECTED). */
  GREENGRASS_CONFIG_INVALID: { status: 422, text: 'the component configuration is invalid' },
  /**
   * A native module does not load in this Node.js: better-sqlite3 built for another
   * NODE_MODULE_VERSION (a Greengrass zip started with a Node other than the one it carries,
   * or node_modules installed under another Node), a binary for another CPU, or a glibc older
   * than the binaries need. The message names which; `edgeloop-agent check` lists every module.
   */
  RUNTIME_MISMATCH: { status: 500, text: 'the native modules do not match this Node.js runtime' },
  /** The alert rule set (`alerts` in the config, or `alerts.rules_file`) does not validate: every bad key is named; the agent does not start. */
  ALERT_RULES_INVALID: { status: 500, text: 'the alert rule set is invalid' },
  /** An alert action failed (site broker not connected or refused, webhook answered an error, command exited non-zero) after its retries. */
  ALERT_ACTION_FAILED: { status: 502, text: 'an alert action failed' },
  /** A rule set from the fleet was refused: its signature does not verify with `fleet_public_key` (or it is unsigned without `allow_unsigned`), its rules do not hash to its sha256, a rule or action is invalid (every bad key named), or it names another device. Logged, reported in device status (`rules.refused`); the running rule set stays. */
  RULE_SET_REFUSED: { status: 422, text: 'a rule set from the fleet was refused' },
  /** An alert action attempt took longer than its `timeout_ms` (a command is killed). */
  ALERT_ACTION_TIMEOUT: { status: 504, text: 'an alert action timed out' },
  /** An action already has `max_queue` alerts waiting: this alert is not run by it (the uplink copy is still kept). */
  ALERT_ACTION_OVERLOADED: { status: 503, text: 'an alert action has too many alerts waiting' },
  /** A camera (`inputs.cameras`) cannot be read: connection refused, credentials refused, ffmpeg exited, or no frame within `stall_timeout_s`. Logged and in telemetry (state `offline`); the agent reconnects with backoff. The message never carries the URL's credentials. */
  CAMERA_UNREACHABLE: { status: 503, text: 'the camera cannot be read' },
  /** A camera sent identical frames for `frozen_after_s` (a frozen picture: a hung encoder, a lens cap, a still image). Logged and in telemetry (state `frozen`) until the picture changes. */
  CAMERA_FROZEN: { status: 503, text: 'the camera picture is frozen' },
  /** Cameras are configured but ffmpeg does not run (`inputs.ffmpeg_path`); a device prerequisite (`apt-get install ffmpeg`), checked at start: the agent does not start. */
  CAMERA_FFMPEG_MISSING: { status: 500, text: 'ffmpeg is not installed' },
  /** A camera frame could not be masked (privacy zones) or decoded; the frame is discarded, never captured unmasked. */
  CAMERA_FRAME_INVALID: { status: 422, text: 'a camera frame could not be processed' },
  NOT_FOUND: { status: 404, text: 'not found' },
  METHOD_NOT_ALLOWED: { status: 405, text: 'method not allowed' },
  /** The local API has `http.token` set and the request did not carry it as `Authorization: Bearer <token>`. */
  UNAUTHORIZED: { status: 401, text: 'a bearer token is required' },
  /** The request's Host header names a host the local API does not answer to (DNS rebinding from a web page); see `http.allowed_hosts`. */
  HOST_NOT_ALLOWED: { status: 421, text: 'the Host header is not allowed' },
});

export type AgentErrorCode = keyof typeof AgentErrors;
/** Every code the agent's catalogue sends (`AGENT_QUEUE_FULL`, `INPUT_INVALID`...). */
export type AgentWireCode = WireCodeOf<typeof AgentErrors>;

export class AgentError extends EdgeloopError {
  constructor(code: AgentErrorCode, message?: string, opts: ErrorOptions = {}) {
    const entry = AgentErrors[code];
    super(entry.code, message ?? entry.text, { status: entry.status, exit: entry.exit, ...opts });
    this.name = 'AgentError';
  }
}
