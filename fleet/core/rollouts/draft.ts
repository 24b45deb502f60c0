/**
 * Copy-on-write working copy of a state for one `step`. The input state is never mutated
 * (callers keep it, tests deep-freeze it): a device record is cloned the first time a handler
 * asks to change it, and the top-level object is a shallow copy whose fields are replaced,
 * never edited in place. `finish` diffs desired states to emit only real changes.
 *
 * The device map itself is copied only when a step changes a device (a tick does not): at
 * 1,000 devices the copy was a large part of a step's cost, and steps run per message.
 */
import type { ModelRef } from '../../../shared/schemas/common.js';
import { rankOrder } from './selection.js';
import { stagesOf, type StageSpec } from './stages.js';
import type { Decision, DesiredChange, DesiredSlot, DeviceRecord, RolloutState, StepResult } from './state-schema.js';

export function sameModel(a: ModelRef | null | undefined, b: ModelRef | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.name === b.name && a.version === b.version;
}

export function sameDesired(a: DesiredSlot | null, b: DesiredSlot | null): boolean {
  if (a === null || b === null) return a === b;
  if (!sameModel(a.active, b.active)) return false;
  if (a.shadow === null || b.shadow === null) return a.shadow === b.shadow;
  return sameModel(a.shadow.model, b.shadow.model) && a.shadow.sample_rate === b.shadow.sample_rate;
}

export class Draft {
  /** Working state: replace its fields, and change devices only through `edit`. */
  readonly state: RolloutState;
  readonly stages: StageSpec[];
  /** The machine's clock for this step (monotonic, see `RolloutState.updated_at`). */
  readonly now: number;
  private readonly base: RolloutState;
  private readonly edited = new Set<string>();
  /** Whether `state.devices` is this draft's own copy yet (it starts as the base's map). */
  private ownDevices = false;
  private readonly log: Decision[] = [];

  constructor(base: RolloutState, at: number) {
    this.base = base;
    this.now = Math.max(base.updated_at ?? 0, at);
    this.state = { ...base, updated_at: this.now };
    this.stages = stagesOf(base.plan);
  }

  get stage(): StageSpec {
    // state.stage is kept in range by the transitions; the fallback only satisfies the type.
    return (this.stages[this.state.stage] ?? this.stages[this.stages.length - 1]) as StageSpec;
  }

  device(id: string): Readonly<DeviceRecord> | undefined {
    return this.state.devices[id];
  }

  /** A mutable copy of a device record, cloned once per step. */
  edit(id: string): DeviceRecord {
    const r = this.state.devices[id];
    if (!r) throw new Error(`rollout draft: unknown device ${id}`);
    if (this.edited.has(id)) return r;
    const copy = structuredClone(r);
    this.devices()[id] = copy;
    this.edited.add(id);
    return copy;
  }

  /** Adds (or replaces, for a device that left and came back) a record. */
  put(id: string, record: DeviceRecord): void {
    this.devices()[id] = record;
    this.edited.add(id);
  }

  /** The draft's own device map, copied from the base on first write. */
  private devices(): Record<string, DeviceRecord> {
    if (!this.ownDevices) {
      this.state.devices = { ...this.state.devices };
      this.ownDevices = true;
    }
    return this.state.devices;
  }

  /** Device ids in selection order. */
  order(): string[] {
    return rankOrder(this.state.devices);
  }

  decide(d: Omit<Decision, 'at'>): void {
    this.log.push({ at: this.now, ...d });
  }

  finish(): StepResult {
    const desired: DesiredChange[] = [];
    const edited: Record<string, { rank: string }> = {};
    for (const id of this.edited) edited[id] = this.state.devices[id] as { rank: string };
    for (const id of rankOrder(edited)) {
      const after = this.state.devices[id]?.desired ?? null;
      const before = this.base.devices[id]?.desired ?? null;
      if (after !== null && !sameDesired(before, after)) desired.push({ device_id: id, active: after.active, shadow: after.shadow });
    }
    const state: RolloutState = { ...this.state, decisions: this.log.length ? [...this.base.decisions, ...this.log] : this.base.decisions };
    return { state, desired, decisions: this.log };
  }
}
