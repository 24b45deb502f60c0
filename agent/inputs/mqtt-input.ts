import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { isEdgeloopError } from '../../shared/errors.js';
import { inferRequest, type ErrorReply, type InferResult } from '../../shared/schemas/index.js';
import { parseJsonWith } from '../../shared/validate.js';
import type { ModelInput } from '../model/runtime.js';
import type { InferContext } from '../service.js';

export interface LocalMqttOptions {
  url: string;
  requestTopic: string;
  resultTopic: string;
  clientId?: string;
}

/**
 * Inference requests from an MQTT topic on the local (on-device) broker. Each request gets a
 * result, or an `error` reply naming the code, on its `reply_to` topic or the result topic.
 * A malformed message is answered and logged; it never stops the subscription.
 */
export class LocalMqttInput {
  private client: MqttClient | null = null;
  private readonly log: Logger;
  handled = 0;
  rejected = 0;

  constructor(
    private readonly opts: LocalMqttOptions,
    private readonly infer: (input: ModelInput, ctx: InferContext) => Promise<InferResult[]>,
    log: Logger,
  ) {
    this.log = log.child({ component: 'mqtt-input' });
  }

  async start(): Promise<void> {
    const client = mqtt.connect(this.opts.url, { clientId: this.opts.clientId ?? `edgeloop-local-${process.pid}`, reconnectPeriod: 2000, connectTimeout: 10_000 });
    this.client = client;
    client.on('connect', () => {
      client.subscribe(this.opts.requestTopic, { qos: 1 }, (err) => {
        if (err) this.log.error({ err }, 'subscribe failed');
        else this.log.info({ topic: this.opts.requestTopic }, 'listening for inference requests');
      });
    });
    client.on('error', (err) => this.log.warn({ err: err.message }, 'local broker error'));
    client.on('message', (_topic, payload) => void this.onMessage(payload));
    await new Promise<void>((resolve) => {
      const done = (): void => resolve();
      client.once('connect', done);
      // Do not block the agent's start on a missing local broker: it reconnects on its own.
      setTimeout(done, 3000).unref();
    });
  }

  private async onMessage(payload: Buffer): Promise<void> {
    let replyTo = this.opts.resultTopic;
    let requestId: string | undefined;
    try {
      const req = parseJsonWith(inferRequest, payload, 'INPUT_INVALID', 'inference request');
      requestId = req.request_id;
      if (req.reply_to) replyTo = req.reply_to;
      const input: ModelInput = req.image_b64 !== undefined ? { kind: 'image', bytes: Buffer.from(req.image_b64, 'base64') } : { kind: 'tensor', tensor: req.tensor!, shape: req.shape };
      const results = await this.infer(input, { source: 'mqtt', requestId });
      for (const r of results) this.client?.publish(replyTo, JSON.stringify(r), { qos: 1 });
      this.handled++;
    } catch (err) {
      this.rejected++;
      const code = isEdgeloopError(err) ? err.code : 'AGENT_INFERENCE_FAILED';
      const reply: ErrorReply = { type: 'error', v: 1, ...(requestId ? { request_id: requestId } : {}), error: { code, message: (err as Error).message } };
      this.log.warn({ code, requestId }, 'inference request rejected');
      this.client?.publish(replyTo, JSON.stringify(reply), { qos: 1 });
    }
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.endAsync();
  }
}
