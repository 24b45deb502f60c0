import { AgentError } from '../errors.js';
import { deviceStatus } from '../../shared/schemas/messages.js';
import type { DeviceStatus } from '../../shared/schemas/messages.js';
import { topics } from '../../shared/topics.js';
import { formatIssues } from '../../shared/validate.js';

/** A message the broker publishes on our behalf when the connection dies without DISCONNECT. */
export interface WillMessage {
  topic: string;
  payload: Uint8Array;
  retain: boolean;
}

/**
 * The last will: the device's retained status with `online: false`, so the fleet sees a
 * device that lost power or network as offline without waiting for telemetry to go stale.
 * Built from the current status each time the uplink connects (the will is fixed at
 * CONNECT), so it names the models actually installed. A clean `close()` sends DISCONNECT,
 * which suppresses the will: the agent publishes its own offline status before closing.
 * Throws `AGENT_CONFIG_INVALID` when the status does not validate.
 */
export function offlineStatusWill(status: DeviceStatus, now: Date): WillMessage {
  const parsed = deviceStatus.safeParse({ ...status, online: false, ts: now.toISOString() });
  if (!parsed.success) {
    const issues = formatIssues(parsed.error.issues);
    throw new AgentError('CONFIG_INVALID', `device status for the last will is invalid: ${issues.join('; ')}`, { details: { issues } });
  }
  return { topic: topics.status(parsed.data.device_id), payload: Buffer.from(JSON.stringify(parsed.data)), retain: true };
}
