/**
 * MQTT topic names, one place. Every device topic lives under its own namespace so a
 * broker ACL (fleet embedded broker, AWS IoT policy with `${iot:Connection.Thing.ThingName}`,
 * Greengrass `{iot:thingName}`) can confine a device to it.
 */
const TOPIC_ROOT = 'edgeloop/v1';

export const topics = {
  deviceRoot: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}`,
  telemetry: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}/telemetry`,
  status: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}/status`,
  samples: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}/samples`,
  acks: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}/acks`,
  desired: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}/desired`,
  /**
   * One model slot's desired state, retained per device and model name, so a device serving
   * several models gets each one's latest after days offline (one retained message per topic).
   */
  desiredModel: (deviceId: string, modelName: string) => `${TOPIC_ROOT}/devices/${deviceId}/desired/${modelName}`,
  /** A device's subscription to every model slot's desired state (a `+` inside its own namespace). */
  desiredModels: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}/desired/+`,
  /** Fleet -> device, retained: the signed alert rule set the device should run. */
  rules: (deviceId: string) => `${TOPIC_ROOT}/devices/${deviceId}/rules`,
  /** Fleet-side wildcard subscriptions. */
  allTelemetry: `${TOPIC_ROOT}/devices/+/telemetry`,
  allStatus: `${TOPIC_ROOT}/devices/+/status`,
  allSamples: `${TOPIC_ROOT}/devices/+/samples`,
  /** Local-broker inference topics (on the device's own broker, not the uplink). */
  localInferRequests: 'edgeloop/local/infer',
  localInferResults: 'edgeloop/local/results',
} as const;

/** The device id in a device topic, or null when the topic is not a device topic. */
export function deviceIdFromTopic(topic: string): string | null {
  const parts = topic.split('/');
  if (parts.length < 5 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT || parts[2] !== 'devices') return null;
  return parts[3] ?? null;
}
