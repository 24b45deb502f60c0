import type { Logger } from 'pino';
import { isEdgeloopError } from '../../shared/errors.js';
import type { ErrorReply, InferRequest, InferResult } from '../../shared/schemas/index.js';
import type { ModelInput } from '../model/runtime.js';
import type { InferContext, InputSource } from '../service.js';

/** One inference request arriving as a message (local MQTT, Greengrass IPC pub/sub). */
export interface MessageRequest {
  /** Parse and validate the message; throws an EdgeloopError naming the code when it is bad. */
  parse: () => InferRequest;
  /** A request id read before validation, so even a rejected request's error reply can be matched. */
  rawRequestId?: string | undefined;
  /** Where answers go unless the request names a `reply_to`. */
  resultTopic: string;
  source: InputSource;
  infer: (input: ModelInput, ctx: InferContext) => Promise<InferResult[]>;
  /** Publish one answer; must not throw (log a failed publish instead). */
  reply: (topic: string, message: InferResult | ErrorReply) => void | Promise<void>;
  log: Logger;
}

/**
 * Parse, validate and infer one request, then answer it: one `infer_result` per example, or
 * an `error` reply naming the code (logged), on `reply_to` or the result topic. A bad request
 * is answered, never thrown. Resolves true when it was answered with results.
 */
export async function answerMessageRequest(m: MessageRequest): Promise<boolean> {
  let replyTo = m.resultTopic;
  let requestId = m.rawRequestId;
  try {
    const req = m.parse();
    requestId = req.request_id;
    if (req.reply_to) replyTo = req.reply_to;
    const input: ModelInput = req.image_b64 !== undefined ? { kind: 'image', bytes: Buffer.from(req.image_b64, 'base64') } : { kind: 'tensor', tensor: req.tensor!, shape: req.shape };
    const results = await m.infer(input, { source: m.source, requestId, model: req.model });
    for (const r of results) await m.reply(replyTo, r);
    return true;
  } catch (err) {
    const code = isEdgeloopError(err) ? err.code : 'AGENT_INFERENCE_FAILED';
    const reply: ErrorReply = { type: 'error', v: 1, ...(requestId ? { request_id: requestId } : {}), error: { code, message: (err as Error).message } };
    m.log.warn({ code, requestId }, 'inference request rejected');
    await m.reply(replyTo, reply);
    return false;
  }
}
