import type { Random } from '../shared/ids.js';

/**
 * The fault kinds of the campaign. `fleet_kill` SIGKILLs the fleet process, which holds the
 * embedded MQTT broker: it is also the broker restart. `broker_outage` cuts every agent's link
 * to the broker at once (the relays between agents and broker), the broker itself staying up.
 */
export const FAULT_KINDS = ['agent_kill', 'fleet_kill', 'link_cut', 'quota_fill', 'broker_outage'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How often each kind is drawn, relative to the others. */
export const FAULT_WEIGHTS: Readonly<Record<FaultKind, number>> = { agent_kill: 2, link_cut: 3, quota_fill: 2, fleet_kill: 1, broker_outage: 1 };

/** What is free to be hit now: a device with a fault in progress is not hit again until it recovers. */
export interface FaultTargets {
  idleDevices: readonly string[];
  /** No fault on the fleet or on every link (fleet_kill, broker_outage) in progress. */
  fleetIdle: boolean;
  /** Kinds not drawn yet: drawn first, so even a short campaign injects every kind. */
  undrawn?: readonly FaultKind[];
}

export type FaultPick = { kind: FaultKind; device: string | null };

/**
 * Draw the next fault (seeded): a kind by weight among those that have a free target (kinds
 * not drawn yet first), then a free device for the device kinds. Null when nothing is free.
 */
export function pickFault(random: Random, t: FaultTargets): FaultPick | null {
  const free = FAULT_KINDS.filter((k) => (k === 'fleet_kill' || k === 'broker_outage' ? t.fleetIdle : t.idleDevices.length > 0));
  const first = free.filter((k) => t.undrawn?.includes(k));
  const possible = first.length > 0 ? first : free;
  if (possible.length === 0) return null;
  const total = possible.reduce((n, k) => n + FAULT_WEIGHTS[k], 0);
  let r = random() * total;
  let kind = possible[possible.length - 1]!;
  for (const k of possible) {
    r -= FAULT_WEIGHTS[k];
    if (r < 0) {
      kind = k;
      break;
    }
  }
  if (kind === 'fleet_kill' || kind === 'broker_outage') return { kind, device: null };
  return { kind, device: t.idleDevices[Math.floor(random() * t.idleDevices.length)]! };
}

export function noFaults(): Record<FaultKind, number> {
  return Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
}
