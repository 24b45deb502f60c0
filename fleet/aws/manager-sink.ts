/**
 * Hands the Greengrass backend's mapped status events to the rollout manager through its
 * public ingestion API, so they take the same path (and the same ordering with telemetry) as
 * a device's own messages:
 * - a `device_report` becomes the deployment part of a device status naming the rollout, and
 *   goes to `onStatus` only (the device registry keeps the device's own last status);
 * - a `pause` from IoT Jobs' abort criteria becomes an operator-style command by
 *   `aws-iot-jobs`, unless the rollout is no longer in a state that can pause.
 */
import type { Logger } from 'pino';
import { isEdgeloopError } from '../../shared/errors.js';
import type { DeviceStatus } from '../../shared/schemas/messages.js';
import type { RolloutManager } from '../rollouts/manager.js';
import type { BackendEventSink } from './greengrass-backend.js';

export function managerSink(rollouts: Pick<RolloutManager, 'onStatus' | 'command'>, log: Logger): BackendEventSink {
  return (rolloutId, ev) => {
    if (ev.type === 'command') {
      try {
        rollouts.command(rolloutId, ev.command, ev.actor);
        log.warn({ rollout: rolloutId, command: ev.command, note: ev.note }, 'rollout paused by IoT Jobs abort criteria');
      } catch (err) {
        if (!isEdgeloopError(err) || err.code !== 'FLEET_CONFLICT') throw err;
        log.info({ rollout: rolloutId, reason: err.message }, 'IoT Jobs abort not applied');
      }
      return;
    }
    const status: DeviceStatus = {
      type: 'device_status',
      v: 1,
      device_id: ev.device_id,
      ts: new Date(ev.at).toISOString(),
      online: true,
      agent_version: 'greengrass-deployment-status',
      // Unknown from AWS's view; reportEventFromStatus reads only the deployment part.
      models: { active: null, previous: null, installed: [] },
      deployment: { revision: 0, rollout_id: rolloutId, target: ev.model, phase: ev.phase, ...(ev.reason ? { reason: ev.reason } : {}), error_code: 'GREENGRASS_DEPLOYMENT' },
    };
    rollouts.onStatus(status);
  };
}
