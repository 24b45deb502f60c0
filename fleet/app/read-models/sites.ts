/**
 * Read model of the fleet by site: every device judged against the thresholds of the model it
 * runs, rolled up per site (a device tag, `site` by default), with the list of what needs
 * attention first. The HTTP API (`GET /v1/sites`) and the console's overview read it here.
 */
import { z } from 'zod';
import { deviceSlots, type DeviceRecord } from '../../core/devices/state.js';
import type { FleetContext } from '../context.js';

const level = z.enum(['ok', 'attention', 'trouble']);
export type Level = z.infer<typeof level>;

/**
 * What a device is judged against. Drift comes from the model's own manifest: `trouble` at its
 * outlier policy's `drift_psi` (the PSI at which the model itself starts sending drifted frames
 * back), `attention` at half of it. A model without `drift_psi` gets the PSI rule of thumb's
 * "significant" 0.25 as trouble (attention 0.125). Attention is not at the rule of thumb's 0.1:
 * over the drift monitor's window (200-500 predictions) a healthy camera's PSI wanders above
 * 0.1 (the demo's steady sites read 0.12-0.14), and a list that flags every site is not read.
 * Outlier rates have no setting in the manifest: the fleet's defaults below.
 */
const thresholds = z.object({
  drift_attention: z.number(),
  drift_trouble: z.number(),
  outlier_attention: z.number(),
  outlier_trouble: z.number(),
  /** Where the drift thresholds came from: `name@version outlier.drift_psi` or `PSI rule of thumb`. */
  source: z.string(),
});
export type Thresholds = z.infer<typeof thresholds>;

/** PSI rule of thumb: under 0.1 stable, 0.1-0.25 a moderate shift, over 0.25 a significant one. */
const PSI_SIGNIFICANT = 0.25;
/** Outlier rate (share of inferences kept as outliers) that asks for a look / is trouble. */
const OUTLIER_ATTENTION = 0.15;
const OUTLIER_TROUBLE = 0.3;

const psiKind = z.enum(['class', 'brightness', 'contrast']);

const worstPsi = z.object({ kind: psiKind, value: z.number(), device: z.string() }).nullable();

const accuracy = z.object({ labeled: z.number().int(), correct: z.number().int(), value: z.number() }).nullable();

const deviceHealthRow = z.object({
  id: z.string(),
  site: z.string(),
  state: z.enum(['online', 'offline']),
  level,
  /** Why the level is not ok, most serious first; empty when ok. */
  reasons: z.array(z.string()),
  model: z.string().nullable(),
  /** Every model the device serves (`name@version`, or the name while its first version is on its way), the default first. */
  models: z.array(z.string()),
  last_seen: z.string().nullable(),
  /** No inferences in the latest telemetry window (rate 0), or no telemetry yet. */
  idle: z.boolean(),
  inference_rate_per_s: z.number().nullable(),
  latency_p95_ms: z.number().nullable(),
  worst_psi: worstPsi,
  outlier_rate: z.number().nullable(),
  /** The active model's accuracy on this device's labeled samples (kept samples: the hard cases). */
  accuracy,
  thresholds,
});
export type DeviceHealthRow = z.infer<typeof deviceHealthRow>;

const siteRow = z.object({
  site: z.string(),
  level,
  reasons: z.array(z.string()),
  devices: z.number().int(),
  online: z.number().int(),
  offline: z.number().int(),
  worst_psi: worstPsi,
  /** The highest outlier rate of the site's online devices. */
  outlier_rate: z.number().nullable(),
  accuracy,
  last_seen: z.string().nullable(),
});
export type SiteRow = z.infer<typeof siteRow>;

export const fleetOverview = z.object({
  /** The tag that makes a site. */
  by: z.string(),
  at: z.string(),
  /** Devices that are not ok, trouble first, each with its reason. */
  attention: z.array(z.object({ site: z.string(), device: z.string(), level, reason: z.string() })),
  sites: z.array(siteRow),
  devices: z.array(deviceHealthRow),
});
export type FleetOverview = z.infer<typeof fleetOverview>;

/** The label for devices without the site tag. */
const NO_SITE = '(no site)';

const RANK: Record<Level, number> = { ok: 0, attention: 1, trouble: 2 };
const worse = (a: Level, b: Level): Level => (RANK[b] > RANK[a] ? b : a);

const fmt = (n: number): string => (Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));
const pctText = (n: number): string => `${(n * 100).toFixed(1)}%`;

/** The thresholds of a manifest's outlier policy (see {@link thresholds}). */
export function thresholdsOf(drift_psi: number | null, source: string): Thresholds {
  const trouble = drift_psi ?? PSI_SIGNIFICANT;
  return {
    drift_attention: trouble / 2,
    drift_trouble: trouble,
    outlier_attention: OUTLIER_ATTENTION,
    outlier_trouble: OUTLIER_TROUBLE,
    source: drift_psi === null ? 'PSI rule of thumb' : `${source} outlier.drift_psi`,
  };
}

/** Judge one device: a pure function of its record, its model's thresholds and its labeled samples. */
function judgeDevice(d: DeviceRecord, tag: string, t: Thresholds, acc: { labeled: number; correct: number } | null): DeviceHealthRow {
  const reasons: Array<{ level: Level; text: string }> = [];
  const h = d.health;
  let worst: z.infer<typeof worstPsi> = null;
  if (h) {
    for (const kind of psiKind.options) {
      const v = h.drift_psi[kind];
      if (v !== null && Number.isFinite(v) && (worst === null || v > worst.value)) worst = { kind, value: v, device: d.id };
    }
  }
  if (d.state === 'offline') reasons.push({ level: 'trouble', text: d.last_seen ? 'offline' : 'never connected' });
  if (d.deployment?.phase === 'failed') reasons.push({ level: 'trouble', text: `deployment of ${d.deployment.target.name}@${d.deployment.target.version} failed${d.deployment.reason ? `: ${d.deployment.reason}` : ''}` });
  if (worst) {
    const what = `${worst.kind} PSI ${fmt(worst.value)}`;
    if (worst.value >= t.drift_trouble) reasons.push({ level: 'trouble', text: `${what} ≥ ${fmt(t.drift_trouble)}` });
    else if (worst.value >= t.drift_attention) reasons.push({ level: 'attention', text: `${what} ≥ ${fmt(t.drift_attention)}` });
  }
  if (h && h.inference_rate_per_s > 0) {
    if (h.outlier_rate >= t.outlier_trouble) reasons.push({ level: 'trouble', text: `outlier rate ${pctText(h.outlier_rate)} ≥ ${pctText(t.outlier_trouble)}` });
    else if (h.outlier_rate >= t.outlier_attention) reasons.push({ level: 'attention', text: `outlier rate ${pctText(h.outlier_rate)} ≥ ${pctText(t.outlier_attention)}` });
  }
  if (d.telemetry?.uplink?.degraded) reasons.push({ level: 'attention', text: `uplink degraded: ${d.telemetry.uplink.degraded}` });
  reasons.sort((a, b) => RANK[b.level] - RANK[a.level]);
  return {
    id: d.id,
    site: d.tags[tag] ?? NO_SITE,
    state: d.state,
    level: reasons.reduce<Level>((l, r) => worse(l, r.level), 'ok'),
    reasons: reasons.map((r) => r.text),
    model: d.models.active ? `${d.models.active.name}@${d.models.active.version}` : null,
    models: deviceSlots(d).map((s) => (s.active ? `${s.active.name}@${s.active.version}` : s.name)),
    last_seen: d.last_seen,
    idle: !h || h.inference_rate_per_s === 0,
    inference_rate_per_s: h?.inference_rate_per_s ?? null,
    latency_p95_ms: h?.latency_p95_ms ?? null,
    worst_psi: worst,
    outlier_rate: h?.outlier_rate ?? null,
    accuracy: acc && acc.labeled > 0 ? { ...acc, value: acc.correct / acc.labeled } : null,
    thresholds: t,
  };
}

/** Roll devices up into sites: the worst level, PSI and outlier rate, summed labels. */
function sitesOf(devices: readonly DeviceHealthRow[]): SiteRow[] {
  const bySite = new Map<string, DeviceHealthRow[]>();
  for (const d of devices) bySite.set(d.site, [...(bySite.get(d.site) ?? []), d]);
  const rows = [...bySite.entries()].map(([site, ds]): SiteRow => {
    let worst: SiteRow['worst_psi'] = null;
    for (const d of ds) if (d.worst_psi && (worst === null || d.worst_psi.value > worst.value)) worst = d.worst_psi;
    const rates = ds.filter((d) => d.state === 'online' && d.outlier_rate !== null).map((d) => d.outlier_rate as number);
    const labeled = ds.reduce((n, d) => n + (d.accuracy?.labeled ?? 0), 0);
    const correct = ds.reduce((n, d) => n + (d.accuracy?.correct ?? 0), 0);
    const seen = ds.map((d) => d.last_seen).filter((s): s is string => s !== null).sort();
    const lvl = ds.reduce<Level>((l, d) => worse(l, d.level), 'ok');
    const reasons = ds.filter((d) => d.level !== 'ok').sort((a, b) => RANK[b.level] - RANK[a.level]).map((d) => `${d.id}: ${d.reasons[0] ?? ''}`);
    return {
      site,
      level: lvl,
      reasons,
      devices: ds.length,
      online: ds.filter((d) => d.state === 'online').length,
      offline: ds.filter((d) => d.state === 'offline').length,
      worst_psi: worst,
      outlier_rate: rates.length ? Math.max(...rates) : null,
      accuracy: labeled > 0 ? { labeled, correct, value: correct / labeled } : null,
      last_seen: seen.at(-1) ?? null,
    };
  });
  // Trouble first, then attention, then by name: the site that needs someone is the first row.
  return rows.sort((a, b) => RANK[b.level] - RANK[a.level] || a.site.localeCompare(b.site));
}

/**
 * The fleet by site. `tag` names the device tag that makes a site; `site` keeps one site only.
 * Reads each active model's manifest once (for its drift threshold); a model the registry no
 * longer holds is judged by the rule of thumb.
 */
export async function fleetOverviewOf(ctx: FleetContext, o: { tag?: string; site?: string } = {}): Promise<FleetOverview> {
  const tag = o.tag ?? 'site';
  const devices = ctx.devices.list();
  const byModel = new Map<string, Thresholds>();
  for (const d of devices) {
    const m = d.models.active;
    if (!m) continue;
    const ref = `${m.name}@${m.version}`;
    if (byModel.has(ref)) continue;
    const known = ctx.registry.find(m.name, m.version);
    byModel.set(ref, known ? thresholdsOf((await ctx.registry.manifest(m.name, m.version)).outlier.drift_psi, ref) : thresholdsOf(null, ref));
  }
  const agreement = new Map<string, { labeled: number; correct: number }>();
  for (const a of ctx.labels.agreement()) agreement.set(`${a.device_id}|${a.model}@${a.version}`, { labeled: a.labeled, correct: a.correct });
  const rule = thresholdsOf(null, '');
  const rows = devices
    .map((d) => {
      const ref = d.models.active ? `${d.models.active.name}@${d.models.active.version}` : null;
      return judgeDevice(d, tag, (ref && byModel.get(ref)) || rule, ref ? (agreement.get(`${d.id}|${ref}`) ?? null) : null);
    })
    .filter((d) => o.site === undefined || d.site === o.site);
  const attention = rows
    .filter((d) => d.level !== 'ok')
    .sort((a, b) => RANK[b.level] - RANK[a.level] || a.site.localeCompare(b.site) || a.id.localeCompare(b.id))
    .map((d) => ({ site: d.site, device: d.id, level: d.level, reason: d.reasons.join('; ') }));
  return { by: tag, at: new Date(ctx.clock.now()).toISOString(), attention, sites: sitesOf(rows), devices: rows };
}
