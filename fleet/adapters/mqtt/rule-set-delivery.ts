import type { MqttClient } from 'mqtt';
import { topics } from '../../../shared/topics.js';
import type { RuleSetDelivery } from '../../app/rules/rule-sets.js';

/**
 * Rule sets as retained QoS 1 messages on each device's `rules` topic: a device offline for
 * days gets the latest when it reconnects, and its revision tells it whether it applied it.
 */
export function mqttRuleSetDelivery(client: MqttClient): RuleSetDelivery {
  return {
    async deliver(messages) {
      await Promise.all(messages.map((m) => client.publishAsync(topics.rules(m.device_id), JSON.stringify(m), { qos: 1, retain: true })));
    },
  };
}
