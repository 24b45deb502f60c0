/** Human output of the API commands: aligned tables and short values. Machine output is `--json`. */

/** Rows under a header, each column as wide as its widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** `key  value` lines with the keys aligned. */
export function fields(pairs: Array<[string, string]>, indent = ''): string[] {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${indent}${k.padEnd(w)}  ${v}`);
}

/** `3s ago`, `12m ago`, `5h ago`, `2d ago`; `-` for none. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)}m ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/** Seconds as `45s`, `10m`, `1h30m`. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${+seconds.toFixed(1)}s`;
  if (seconds < 3600) return seconds % 60 ? `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s` : `${seconds / 60}m`;
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return m ? `${h}h${m}m` : `${h}h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export const tags = (t: Record<string, string>): string =>
  Object.entries(t)
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '-';

export const ref = (m: { name: string; version: string } | null | undefined): string => (m ? `${m.name}@${m.version}` : '-');

/** A number for a table cell: integers as is, fractions to 3 significant digits. */
export function num(v: number | string | null | undefined): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  return Number.isInteger(v) ? String(v) : String(+v.toPrecision(3));
}

/** `HH:MM:SS` of an epoch-ms or ISO time, local. */
export function clockTime(t: number | string): string {
  const d = new Date(t);
  return d.toTimeString().slice(0, 8);
}
