import { EdgeloopError, sideCode } from '../shared/errors.js';

/**
 * The agent's error catalogue. Codes are stable: scripts and the fleet match on them.
 * `status` is the HTTP status the local API answers with.
 */
export const AgentErrors = {
  CONFIG_INVALID: { status: 500, text: 'configuration is invalid' },
  INPUT_INVALID: { status: 400, text: 'input is malformed' },
  IMAGE_DECODE_FAILED: { status: 422, text: 'image could not be decoded' },
  TENSOR_SHAPE_MISMATCH: { status: 422, text: 'tensor does not match the model input' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, text: 'content type is not supported' },
  PAYLOAD_TOO_LARGE: { status: 413, text: 'payload too large' },
  MODEL_NOT_LOADED: { status: 503, text: 'no model is active' },
  MODEL_PACKAGE_INVALID: { status: 422, text: 'model package is invalid' },
  MODEL_HASH_MISMATCH: { status: 422, text: 'a model file does not match its sha256' },
  MODEL_SIGNATURE_INVALID: { status: 422, text: 'model package signature is missing or invalid' },
  MODEL_LOAD_FAILED: { status: 422, text: 'ONNX Runtime could not load the model' },
  MODEL_SMOKE_TEST_FAILED: { status: 422, text: 'golden inputs did not give the expected outputs' },
  MODEL_VERSION_UNKNOWN: { status: 404, text: 'model version is not installed' },
  INFERENCE_FAILED: { status: 500, text: 'inference failed' },
  ENGINE_OVERLOADED: { status: 503, text: 'too many requests are waiting for inference' },
  ENGINE_CLOSED: { status: 503, text: 'the inference engine is shut down' },
  QUEUE_FULL: { status: 507, text: 'the sample queue is full' },
  QUEUE_ITEM_TOO_LARGE: { status: 413, text: 'the item is larger than the queue quota' },
  STORAGE_FAILED: { status: 507, text: 'local storage failed' },
  UPLINK_MESSAGE_TOO_LARGE: { status: 413, text: 'message exceeds the uplink limit' },
  UPLINK_DISCONNECTED: { status: 503, text: 'the uplink is not connected' },
  UPLINK_PUBLISH_FAILED: { status: 502, text: 'the broker did not accept the message' },
  UPLINK_CLOSED: { status: 503, text: 'the uplink is closed' },
  UPLINK_SUBSCRIBE_REFUSED: { status: 500, text: 'the broker refused a subscription' },
  GREENGRASS_ENV_INCOMPLETE: { status: 500, text: 'the Greengrass nucleus environment is incomplete (SVCUID and the IPC socket path go together)' },
  GREENGRASS_IPC_FAILED: { status: 503, text: 'a Greengrass IPC call to the nucleus failed' },
  GREENGRASS_CONFIG_INVALID: { status: 422, text: 'the component configuration is invalid' },
  NOT_FOUND: { status: 404, text: 'not found' },
  METHOD_NOT_ALLOWED: { status: 405, text: 'method not allowed' },
} as const;

export type AgentErrorCode = keyof typeof AgentErrors;

export class AgentError extends EdgeloopError {
  constructor(code: AgentErrorCode, message?: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    const entry = AgentErrors[code];
    super(sideCode('AGENT', code), message ?? entry.text, { status: entry.status, ...opts });
    this.name = 'AgentError';
  }
}
