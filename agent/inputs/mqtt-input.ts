import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { inferRequest, type InferResult } from '../../shared/schemas/index.js';
import { parseJsonWith } from '../../shared/validate.js';
import type { ModelInput } from '../model/runtime.js';
import { answerMessageRequest } from './infer-request.js';
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
    const ok = await answerMessageRequest({
      parse: () => parseJsonWith(inferRequest, payload, 'INPUT_INVALID', 'inference request'),
      resultTopic: this.opts.resultTopic,
      source: 'mqtt',
      infer: this.infer,
      reply: (topic, message) => {
        this.client?.publish(topic, JSON.stringify(message), { qos: 1 });
      },
      log: this.log,
    });
    if (ok) this.handled++;
    else this.rejected++;
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.endAsync();
  }
}
