/**
 * Hands the Greengrass backend's mapped status events to the rollout manager through its
 * public ingestion API, so they take the same path (and the same ordering with telemetry) as
 * a device's own messages:
 * - a `device_report` goes to that rollout's `onReport` (the device registry keeps the device's
 *   own last status; nothing pretends to be one);
 * - a `pause` from IoT Jobs' abort criteria becomes an operator-style command by
 *   `aws-iot-jobs`, unless the rollout is no longer in a state that can pause.
 */
import type { Logger } from 'pino';
import { isEdgeloopError } from '../../../shared/errors.js';
import type { RolloutManager } from '../../app/rollouts/manager.js';
import type { BackendEventSink } from './greengrass-backend.js';

export function managerSink(rollouts: Pick<RolloutManager, 'onReport' | 'command'>, log: Logger): BackendEventSink {
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
    rollouts.onReport(rolloutId, ev);
  };
}
