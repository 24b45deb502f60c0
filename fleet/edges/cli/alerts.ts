import type { AlertQuery } from '../../app/alerts/alerts.js';
import type { StoredAlert } from '../client/api-client.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { ago, num, ref, table } from './format.js';

export const ALERTS_HELP = `Usage: edgeloop alerts COMMAND

  list [filters] [--limit N] [--before C]   alerts raised by device rules, newest first
  ack ID                                    acknowledge an alert (operator)
  resolve ID                                resolve an alert (operator)

Run 'edgeloop alerts COMMAND --help' for a command's options.`;

const LIST_HELP = `Usage: edgeloop alerts list [--site S] [--severity info|warning|critical] [--rule R] [--device D]
                          [--from TIME] [--to TIME] [--state open|acknowledged|resolved|all] [--limit N] [--before C]

  --from / --to   raised at or after / before (ISO time)
  --state         open: neither acknowledged nor resolved (default all)
  --before C      the next (older) page: the cursor the previous page printed`;

const ACK_HELP = `Usage: edgeloop alerts ack ID`;
const RESOLVE_HELP = `Usage: edgeloop alerts resolve ID`;

const stateOf = (a: StoredAlert): string => (a.resolved ? `resolved by ${a.resolved.by}` : a.acknowledged ? `acked by ${a.acknowledged.by}` : 'open');

const list = apiCommand(
  LIST_HELP,
  { site: { type: 'string' }, severity: { type: 'string' }, rule: { type: 'string' }, device: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, state: { type: 'string' }, limit: { type: 'string' }, before: { type: 'string' } },
  async (c) => {
    positionalsOf(c.positionals, [], LIST_HELP);
    const v = c.values;
    const limit = v.limit === undefined ? undefined : Number(v.limit);
    if (limit !== undefined && !Number.isInteger(limit)) throw usage(`--limit expects a count, got ${v.limit}`, LIST_HELP);
    // The API validates every value (an unknown severity or state is INPUT_INVALID naming it).
    const { site, severity, rule, device, from, to, state, before } = v;
    const query = Object.fromEntries(Object.entries({ site, severity, rule, device, from, to, state, before, limit }).filter(([, x]) => x !== undefined)) as AlertQuery;
    const page = await (await c.client()).listAlerts(query);
    c.emit(page, () => {
      if (!page.items.length) {
        c.io.out('no alerts');
        return;
      }
      const now = Date.now();
      for (const l of table(
        ['ID', 'SEVERITY', 'RULE', 'DEVICE', 'CAMERA', 'LABEL', 'SCORE', 'COUNT', 'MODEL', 'RAISED', 'STATE'],
        page.items.map((a) => [a.alert_id, a.severity, a.rule, a.device_id, a.camera ?? '-', a.label, num(a.score), String(a.count), ref(a.model), ago(a.raised_at, now), stateOf(a)]),
      ))
        c.io.out(l);
      if (page.next_before) c.io.out(`more: --before ${page.next_before}`);
    });
  },
);

const ack = apiCommand(ACK_HELP, {}, async (c) => {
  const [id] = positionalsOf(c.positionals, ['ID'], ACK_HELP) as [string];
  const a = await (await c.client()).ackAlert(id);
  c.emit(a, () => c.io.out(`${a.alert_id}: acknowledged by ${a.acknowledged?.by} at ${a.acknowledged?.at}`));
});

const resolve = apiCommand(RESOLVE_HELP, {}, async (c) => {
  const [id] = positionalsOf(c.positionals, ['ID'], RESOLVE_HELP) as [string];
  const a = await (await c.client()).resolveAlert(id);
  c.emit(a, () => c.io.out(`${a.alert_id}: resolved by ${a.resolved?.by} at ${a.resolved?.at}`));
});

export const alertsCmd = group(ALERTS_HELP, { list, ack, resolve });
