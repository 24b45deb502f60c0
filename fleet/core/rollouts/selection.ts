/**
 * Which devices a stage takes. Devices are ordered by a hash of rollout id + device id: stable
 * across replays and restarts (no randomness, no insertion order), different per rollout (so
 * the same unlucky devices are not always the canary), and cumulative by construction (each
 * stage tops up from the front of the same order).
 */
import { sha256Hex } from '../../../shared/ids.js';
import type { DeviceRecord } from './state-schema.js';

/** 64 bits of sha256 as hex: collisions at fleet sizes are negligible and ties fall back to the id. */
export function deviceRank(rolloutId: string, deviceId: string): string {
  return sha256Hex(`${rolloutId}\n${deviceId}`).slice(0, 16);
}

type Ranked = Pick<DeviceRecord, 'rank'>;

/** Device ids in selection order. Every loop over devices uses it, so output order is deterministic. */
export function rankOrder(devices: Readonly<Record<string, Ranked>>): string[] {
  return Object.keys(devices).sort((a, b) => {
    const ra = devices[a]?.rank ?? '';
    const rb = devices[b]?.rank ?? '';
    return ra < rb ? -1 : ra > rb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
}

/** In the target and under this rollout's control. */
export function isManaged(r: DeviceRecord): boolean {
  return !r.removed && r.excluded_reason === null;
}

/** Target size that percents apply to. */
export function targetSize(devices: Readonly<Record<string, DeviceRecord>>): number {
  let n = 0;
  for (const r of Object.values(devices)) if (isManaged(r)) n++;
  return n;
}

/**
 * Devices to move to the candidate so that `allowance` devices hold it. Failed devices keep
 * their slot (the allowance bounds exposure, so a failure is not replaced by a fresh device)
 * and are never picked again.
 */
export function pickActive(devices: Readonly<Record<string, DeviceRecord>>, allowance: number): string[] {
  const order = rankOrder(devices).filter((id) => isManaged(devices[id] as DeviceRecord));
  const holding = order.filter((id) => devices[id]?.assigned_stage !== null).length;
  const free = order.filter((id) => {
    const r = devices[id] as DeviceRecord;
    return r.assigned_stage === null && r.failure === null;
  });
  return free.slice(0, Math.max(0, allowance - holding));
}

/**
 * Devices to start shadowing so that `allowance` devices shadow. A device without an active
 * model has nothing to shadow beside, so it is skipped.
 */
export function pickShadow(devices: Readonly<Record<string, DeviceRecord>>, allowance: number): string[] {
  const order = rankOrder(devices).filter((id) => isManaged(devices[id] as DeviceRecord));
  const holding = order.filter((id) => devices[id]?.shadow_stage !== null).length;
  const free = order.filter((id) => {
    const r = devices[id] as DeviceRecord;
    return r.shadow_stage === null && r.assigned_stage === null && r.failure === null && r.last_known_good !== null;
  });
  return free.slice(0, Math.max(0, allowance - holding));
}
