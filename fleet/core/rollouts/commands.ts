/**
 * Manual commands. A command that does not apply in the current status is not an error in the
 * fold (the event log must always replay); it becomes a `command_rejected` decision that says
 * why. The HTTP layer can ask `commandAllowed` first to answer 409 instead.
 */
import type { Draft } from './draft.js';
import type { CommandEvent, RolloutCommand } from './event-schema.js';
import type { RolloutStatus } from './state-schema.js';
import { abortAll, advance, evaluateStage, here, pause, topUp } from './transitions.js';

const ALLOWED: Record<RolloutCommand, readonly RolloutStatus[]> = {
  pause: ['running'],
  resume: ['paused'],
  abort: ['pending', 'running', 'paused'],
  rollback: ['running', 'paused', 'completed'],
  promote: ['running', 'paused'],
  exclude: ['running', 'paused', 'completed'],
};

const WHY_NOT: Partial<Record<RolloutCommand, Partial<Record<RolloutStatus, string>>>> = {
  abort: { completed: 'the rollout completed; use rollback to revert the devices it moved' },
  rollback: { pending: 'nothing to roll back before start; use abort' },
  exclude: { pending: 'nothing to exclude before start' },
};

/** `null` when `command` applies in `status`, else the reason it is rejected. */
export function commandAllowed(status: RolloutStatus, command: RolloutCommand): string | null {
  if (ALLOWED[command].includes(status)) return null;
  return WHY_NOT[command]?.[status] ?? `the rollout is ${status}`;
}

const by = (e: CommandEvent): string => `${e.actor}${e.note ? ` (${e.note})` : ''}`;

/** Failures an operator has moved past no longer count against `max_failures`. */
function acknowledgeFailures(d: Draft): number {
  let n = 0;
  for (const id of d.order()) {
    const f = d.device(id)?.failure;
    if (!f || f.acknowledged) continue;
    const r = d.edit(id);
    if (r.failure) r.failure.acknowledged = true;
    n++;
  }
  return n;
}

function resume(d: Draft, e: CommandEvent, why: string): void {
  const acked = acknowledgeFailures(d);
  d.state.status = 'running';
  d.state.pause = null;
  const moved = topUp(d);
  d.decide({
    kind: 'resumed',
    ...here(d),
    actor: e.actor,
    reason: `${why} by ${by(e)}; ${acked} device failures acknowledged, ${moved} devices moved now (bake time kept running while paused)`,
    signals: [
      { name: 'failures_acknowledged', value: acked },
      { name: 'moved_now', value: moved },
    ],
  });
}

function promote(d: Draft, e: CommandEvent): void {
  const r = evaluateStage(d);
  if (r.status !== 'pass' && !e.force) {
    d.decide({ kind: 'command_rejected', ...here(d), actor: e.actor, reason: `promote rejected: ${d.stage.name} ${r.reason} (use force to override)`, signals: r.signals });
    return;
  }
  if (d.state.status === 'paused') resume(d, e, 'resumed to promote');
  if (r.status === 'pass') {
    d.decide({ kind: 'gate_passed', ...here(d), actor: e.actor, reason: `${d.stage.name} promoted by ${by(e)}, skipping the rest of its bake: ${r.reason}`, signals: r.signals });
  } else {
    // A forced promotion moves past failures on purpose; counting them again in the next
    // stage would pause it at once.
    acknowledgeFailures(d);
    d.decide({ kind: 'gate_overridden', ...here(d), actor: e.actor, reason: `${d.stage.name} force-promoted by ${by(e)} although ${r.reason}`, signals: r.signals });
  }
  advance(d);
}

/**
 * Takes devices that have not confirmed out of the rollout on an operator's word (a camera
 * that is down for weeks): they stop counting as outstanding and against the stage, keep the
 * desired state they were given, and are named in the decision. Devices that already
 * confirmed, failed, left or are not in the rollout are not changed, and said so.
 */
function exclude(d: Draft, e: CommandEvent): void {
  const asked = [...new Set(e.devices ?? [])];
  const done: string[] = [];
  const skipped: string[] = [];
  for (const id of asked) {
    const r = d.device(id);
    if (!r || r.removed || r.excluded_reason !== null || r.installed_at !== null || r.failure !== null) {
      skipped.push(id);
      continue;
    }
    d.edit(id).excluded_reason = `excluded by ${by(e)}`;
    done.push(id);
  }
  if (done.length === 0) {
    const why = asked.length === 0 ? 'name the devices to exclude' : `none of ${asked.join(', ')} is an unconfirmed device of this rollout`;
    d.decide({ kind: 'command_rejected', ...here(d), actor: e.actor, reason: `exclude rejected: ${why}` });
    return;
  }
  d.decide({
    kind: 'devices_excluded',
    ...here(d),
    actor: e.actor,
    reason: `${done.length} devices excluded by ${by(e)}: ${done.join(', ')}${skipped.length ? `; not changed (confirmed, failed, gone or unknown): ${skipped.join(', ')}` : ''}`,
    signals: [
      { name: 'excluded', value: done.length },
      { name: 'not_changed', value: skipped.length },
    ],
  });
}

const handlers: Record<RolloutCommand, (d: Draft, e: CommandEvent) => void> = {
  pause: (d, e) => pause(d, 'manual', e.actor, `paused by ${by(e)}`),
  resume: (d, e) => resume(d, e, 'resumed'),
  abort: (d, e) => abortAll(d, 'aborted', e.actor, `manual abort by ${by(e)}`),
  rollback: (d, e) => abortAll(d, 'rolled_back', e.actor, `manual rollback by ${by(e)}`),
  promote,
  exclude,
};

/** Applies an operator command, or logs why it does not apply. */
export function handleCommand(d: Draft, e: CommandEvent): void {
  const no = commandAllowed(d.state.status, e.command);
  if (no !== null) {
    d.decide({ kind: 'command_rejected', ...here(d), actor: e.actor, reason: `${e.command} rejected: ${no}` });
    return;
  }
  handlers[e.command](d, e);
}
