/**
 * One handler per event type (commands live in commands.ts). Handlers record what happened;
 * `progress` (run by `step` after every handler) judges the gates.
 */
import { modelRefString, type ModelRef } from '../../../shared/schemas/common.js';
import { addShadow, addWindow, emptyMetrics, emptyShadow } from './aggregate.js';
import { handleCommand } from './commands.js';
import { sameModel, type Draft } from './draft.js';
import type { DeviceMetricsBatchEvent, DeviceMetricsEvent, DeviceReportEvent, DevicesChangedEvent, RolloutEvent, StartEvent, TargetDevice } from './event-schema.js';
import { deviceRank } from './selection.js';
import { describePlan } from './stages.js';
import type { DeviceRecord } from './state-schema.js';
import { enterStage, here, revertDevice, topUp } from './transitions.js';

const show = (m: ModelRef | null): string => (m ? modelRefString(m) : 'no model');

/** Does the device hold every tag the plan's canary prefers? */
const preferred = (dev: TargetDevice, prefer: Record<string, string>): boolean => Object.entries(prefer).every(([k, v]) => dev.tags?.[k] === v);

/**
 * A fresh record for a target device; it stays untouched until selection picks it. With a
 * canary preference the rank starts with 0 for a preferred device and 1 for the rest, so the
 * selection order (rank order) takes preferred devices first and keeps the hash order within each.
 */
export function newRecord(rolloutId: string, candidate: ModelRef, dev: TargetDevice, prefer?: Record<string, string>): DeviceRecord {
  const rank = deviceRank(rolloutId, dev.id);
  return {
    rank: prefer ? `${preferred(dev, prefer) ? '0' : '1'}${rank}` : rank,
    last_known_good: dev.active ? { ...dev.active } : null,
    desired: null,
    shadow_stage: null,
    assigned_stage: null,
    reported: null,
    installed_at: null,
    shadow_installed_at: null,
    baseline: dev.baseline ? addWindow(emptyMetrics(), dev.baseline) : emptyMetrics(),
    candidate: emptyMetrics(),
    shadow: emptyShadow(),
    failure: null,
    revert_pending: false,
    removed: false,
    // It has no earlier version to fall back to from this rollout's point of view; moving it
    // would make "revert every touched device" point it at the candidate again.
    excluded_reason: sameModel(dev.active, candidate) ? `already runs ${modelRefString(candidate)}` : null,
  };
}

function onStart(d: Draft, e: StartEvent): void {
  if (d.state.status !== 'pending') {
    d.decide({ kind: 'event_ignored', reason: `start ignored: the rollout is already ${d.state.status}` });
    return;
  }
  const prefer = d.state.plan.canary.prefer?.tag;
  for (const dev of e.devices) if (!d.device(dev.id)) d.put(dev.id, newRecord(d.state.id, d.state.candidate, dev, prefer));
  const all = Object.values(d.state.devices);
  const excluded = all.filter((r) => r.excluded_reason !== null).length;
  const favoured = prefer ? e.devices.filter((dev) => preferred(dev, prefer)).length : null;
  d.state.status = 'running';
  d.state.started_at = d.now;
  d.decide({
    kind: 'started',
    reason: `rollout of ${modelRefString(d.state.candidate)} started on ${all.length} target devices (${excluded} already run it): ${describePlan(d.stages)}${
      prefer ? `; the canary prefers ${Object.entries(prefer).map(([k, v]) => `${k}=${v}`).join(', ')} (${favoured} devices)` : ''
    }`,
    signals: [
      { name: 'target_devices', value: all.length },
      { name: 'already_on_candidate', value: excluded },
      ...(favoured !== null ? [{ name: 'preferred_devices', value: favoured }] : []),
    ],
  });
  enterStage(d, 0);
}

function fail(d: Draft, id: string, e: DeviceReportEvent): void {
  const r = d.edit(id);
  r.failure = { at: d.now, stage: d.state.stage, reason: e.reason ?? `reported ${e.phase}`, acknowledged: false };
  revertDevice(d, id);
  const counted = Object.values(d.state.devices).filter((x) => x.failure && !x.failure.acknowledged && !x.removed).length;
  d.decide({
    kind: 'device_failed',
    ...here(d),
    device_id: id,
    reason: `${id} reported ${e.phase} for ${modelRefString(d.state.candidate)}${e.reason ? ` (${e.reason})` : ''}; reverting this device alone to ${show(r.last_known_good)}`,
    signals: [
      { name: 'phase', value: e.phase },
      { name: 'failures_unacknowledged', value: counted },
    ],
  });
}

function onReport(d: Draft, e: DeviceReportEvent): void {
  const prev = d.device(e.device_id);
  // Reports arrive from the whole fleet and out of order: ignore strangers and stale news.
  if (!prev || d.state.status === 'pending' || (prev.reported && e.at < prev.reported.at)) return;
  const r = d.edit(e.device_id);
  r.reported = { at: e.at, phase: e.phase, model: { ...e.model }, reason: e.reason ?? null };
  if (r.removed || r.excluded_reason !== null) return;
  const cand = d.state.candidate;
  const isCand = sameModel(e.model, cand);
  const wantsActive = sameModel(r.desired?.active, cand);
  const wantsShadow = sameModel(r.desired?.shadow?.model, cand);
  if (isCand && (e.phase === 'failed' || e.phase === 'rolled_back') && (wantsActive || wantsShadow)) return fail(d, e.device_id, e);
  if (isCand && e.phase === 'active' && wantsActive && r.installed_at === null) r.installed_at = e.at;
  if (isCand && e.phase === 'shadow' && wantsShadow && r.shadow_installed_at === null) r.shadow_installed_at = e.at;
  // Back on last-known-good: it runs that version (`active`), or the agent says it went back to
  // it (`rolled_back` naming the version it returned to, as agent/deploy/controller.ts reports)
  // or off the candidate (`rolled_back` naming the candidate).
  const backOnLkg = ((e.phase === 'active' || e.phase === 'rolled_back') && !isCand && sameModel(e.model, r.last_known_good)) || (e.phase === 'rolled_back' && isCand);
  if (r.revert_pending && backOnLkg) {
    r.revert_pending = false;
    d.decide({ kind: 'device_rolled_back', ...here(d), device_id: e.device_id, reason: `${e.device_id} confirmed it is back on ${show(r.last_known_good)}`, signals: [{ name: 'phase', value: e.phase }] });
  }
  if (r.desired === null && e.phase === 'active' && !isCand && !sameModel(e.model, r.last_known_good)) {
    // Untouched devices may change version under another owner; last-known-good is what the
    // device ran right before this rollout touches it, so follow it (and restart the baseline).
    r.last_known_good = { ...e.model };
    r.baseline = emptyMetrics();
  }
}

function onMetrics(d: Draft, e: DeviceMetricsEvent): void {
  const prev = d.device(e.device_id);
  if (!prev || d.state.status === 'pending') return;
  const cand = d.state.candidate;
  const r = d.edit(e.device_id);
  // Metrics are tagged with the model that produced them, so a window of the previous version
  // that arrives late (the device was offline) still lands in the baseline.
  if (sameModel(e.model, cand)) {
    r.candidate = addWindow(r.candidate, e.window);
    if (r.installed_at === null && sameModel(r.desired?.active, cand) && e.window.count + e.window.errors > 0) r.installed_at = e.at;
  } else if (sameModel(e.model, r.last_known_good)) {
    r.baseline = addWindow(r.baseline, e.window);
  }
  if (e.shadow && sameModel(e.shadow.model, cand)) {
    r.shadow = addShadow(r.shadow, e.shadow);
    if (r.shadow_installed_at === null && sameModel(r.desired?.shadow?.model, cand) && e.shadow.count > 0) r.shadow_installed_at = e.at;
  }
}

function onDevicesChanged(d: Draft, e: DevicesChangedEvent): void {
  const status = d.state.status;
  if (status === 'pending') {
    d.decide({ kind: 'event_ignored', reason: 'devices_changed ignored: the rollout has not started (send the target with start)' });
    return;
  }
  let added = 0;
  let removed = 0;
  let reverted = 0;
  for (const dev of e.added) {
    const r = d.device(dev.id);
    if (r && !r.removed) continue;
    // A device that left and came back starts over: what it runs now is its last-known-good.
    d.put(dev.id, newRecord(d.state.id, d.state.candidate, dev, d.state.plan.canary.prefer?.tag));
    added++;
  }
  for (const id of e.removed) {
    const r = d.device(id);
    if (!r || r.removed) continue;
    // Leaving the target mid-rollout must not strand a device on an unapproved version; after
    // completion the candidate is the approved version, so the device keeps it.
    if ((status === 'running' || status === 'paused') && revertDevice(d, id)) reverted++;
    d.edit(id).removed = true;
    removed++;
  }
  if (added + removed === 0) return;
  const moved = status === 'running' || status === 'completed' ? topUp(d) : 0;
  d.decide({
    kind: 'devices_changed',
    ...here(d),
    reason: `${added} devices joined and ${removed} left the target (${reverted} reverted on the way out); ${moved} moved now${status === 'paused' ? ' (paused: newcomers wait for resume)' : ''}`,
    signals: [
      { name: 'added', value: added },
      { name: 'removed', value: removed },
      { name: 'reverted', value: reverted },
      { name: 'moved_now', value: moved },
    ],
  });
}

type Handlers = { [K in RolloutEvent['type']]: (d: Draft, e: Extract<RolloutEvent, { type: K }>) => void };

/** Dispatch table: one handler per event type. */
export const eventHandlers: Handlers = {
  start: onStart,
  tick: () => undefined,
  device_report: onReport,
  device_metrics: onMetrics,
  device_metrics_batch: (d: Draft, e: DeviceMetricsBatchEvent) => {
    for (const item of e.items) onMetrics(d, item);
  },
  command: handleCommand,
  devices_changed: onDevicesChanged,
};
