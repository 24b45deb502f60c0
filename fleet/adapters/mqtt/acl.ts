import { topics } from '../../../shared/topics.js';

/** Who is on the other end of an MQTT connection, once authenticated. */
export type Identity = { kind: 'fleet' } | { kind: 'device'; id: string };

/**
 * Topic access rules, pure. A device publishes only its own telemetry, status and samples,
 * and subscribes only to its own desired state, rule set and acks: it can neither publish as another
 * device nor read another device's deployment. No wildcards for devices (a `+` would read
 * other namespaces), except the last level of its own per-model desired states
 * (`.../desired/+`). The fleet's own connection may do anything.
 */
export function canPublish(who: Identity, topic: string): boolean {
  if (who.kind === 'fleet') return true;
  return topic === topics.telemetry(who.id) || topic === topics.status(who.id) || topic === topics.samples(who.id);
}

export function canSubscribe(who: Identity, filter: string): boolean {
  if (who.kind === 'fleet') return true;
  // `.../desired/+` is the one wildcard: its `+` stays inside the device's own namespace.
  return filter === topics.desired(who.id) || filter === topics.desiredModels(who.id) || filter === topics.acks(who.id) || filter === topics.rules(who.id);
}

/**
 * MQTT client ids are bound to identities: a device must connect with its own id as client
 * id, so it cannot take over (and disconnect) another device's session.
 */
export function clientIdAllowed(who: Identity, clientId: string): boolean {
  return who.kind === 'fleet' ? clientId.startsWith('edgeloop-fleet') : clientId === who.id;
}
