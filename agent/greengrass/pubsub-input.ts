import type { Logger } from 'pino';
import { inferRequest, type InferResult } from '../../shared/schemas/index.js';
import { parseWith } from '../../shared/validate.js';
import { AgentErrors } from '../errors.js';
import { answerMessageRequest } from '../inputs/infer-request.js';
import type { ModelInput } from '../model/runtime.js';
import type { InferContext } from '../service.js';
import { ipcErrorText, type IpcClient } from './ipc-client.js';

export interface PubsubInputOptions {
  requestTopic: string;
  resultTopic: string;
}

/**
 * Inference requests from other Greengrass components over local IPC pub/sub
 * (`SubscribeToTopic`/`PublishToTopic`, allowed by the recipe's `aws.greengrass.ipc.pubsub`
 * policy). Same request and answer schemas as the local MQTT input: a JSON message (or the
 * same JSON as a binary message) in, one `infer_result` per example or an `error` reply out,
 * on `reply_to` or the result topic. A bad request is answered and logged, never fatal.
 */
export class GreengrassPubsubInput {
  private readonly log: Logger;
  private op: { close(): Promise<void> } | null = null;
  handled = 0;
  rejected = 0;

  constructor(
    private readonly client: IpcClient,
    private readonly opts: PubsubInputOptions,
    private readonly infer: (input: ModelInput, ctx: InferContext) => Promise<InferResult[]>,
    log: Logger,
  ) {
    this.log = log.child({ component: 'ipc-pubsub-input' });
  }

  async start(): Promise<void> {
    const op = this.client.subscribeToTopic({ topic: this.opts.requestTopic });
    op.on('message', (m) => {
      let body: unknown;
      try {
        body = m.jsonMessage ? m.jsonMessage.message : JSON.parse(Buffer.from((m.binaryMessage?.message ?? new Uint8Array()) as ArrayBuffer).toString('utf8'));
      } catch (err) {
        body = { __unparseable: (err as Error).message };
      }
      void this.onRequest(body);
    });
    await op.activate();
    this.op = op;
    this.log.info({ topic: this.opts.requestTopic }, 'listening for inference requests over IPC pub/sub');
  }

  private async onRequest(body: unknown): Promise<void> {
    // Known before validation, so even a rejected request's error reply can be matched by the caller.
    const rawId = (body as { request_id?: unknown } | null)?.request_id;
    const ok = await answerMessageRequest({
      parse: () => parseWith(inferRequest, body, AgentErrors.IPC_REQUEST_INVALID, 'inference request'),
      rawRequestId: typeof rawId === 'string' ? rawId.slice(0, 128) : undefined,
      resultTopic: this.opts.resultTopic,
      source: 'ipc',
      infer: this.infer,
      reply: (topic, message) => this.reply(topic, message),
      log: this.log,
    });
    if (ok) this.handled++;
    else this.rejected++;
  }

  private async reply(topic: string, message: unknown): Promise<void> {
    try {
      await this.client.publishToTopic({ topic, publishMessage: { jsonMessage: { message } } });
    } catch (err) {
      // Typically the recipe's pubsub policy does not allow this reply_to topic.
      this.log.warn({ topic, reason: ipcErrorText(err), code: 'AGENT_GREENGRASS_IPC_FAILED' }, 'inference answer could not be published');
    }
  }

  async stop(): Promise<void> {
    const op = this.op;
    this.op = null;
    await op?.close().catch(() => undefined);
  }
}
