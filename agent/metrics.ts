/**
 * A small Prometheus text-format registry (exposition format 0.0.4). Enough for counters,
 * gauges read at scrape time and latency histograms, without a dependency.
 */
type Labels = Record<string, string>;

const fmtLabels = (l: Labels): string => {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}` : '';
};

interface Metric {
  render(): string[];
}

class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    private readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = fmtLabels(labels);
    const cur = this.values.get(key);
    if (cur) cur.value += by;
    else this.values.set(key, { labels, value: by });
  }

  get(labels: Labels = {}): number {
    return this.values.get(fmtLabels(labels))?.value ?? 0;
  }

  total(): number {
    let t = 0;
    for (const v of this.values.values()) t += v.value;
    return t;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${fmtLabels(labels)} ${value}`);
    return lines;
  }
}

class Gauge implements Metric {
  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly read: () => Array<{ labels?: Labels; value: number | null }> | number | null,
  ) {}

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const v = this.read();
    const rows = typeof v === 'number' || v === null ? [{ value: v }] : v;
    for (const r of rows) if (r.value !== null && Number.isFinite(r.value)) lines.push(`${this.name}${fmtLabels(('labels' in r && r.labels) || {})} ${r.value}`);
    return lines;
  }
}

class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly buckets: number[],
  ) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= (this.buckets[i] as number)) this.counts[i]! += 1;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  counter(name: string, help: string): Counter {
    const m = new Counter(name, help);
    this.metrics.push(m);
    return m;
  }

  gauge(name: string, help: string, read: () => Array<{ labels?: Labels; value: number | null }> | number | null): Gauge {
    const m = new Gauge(name, help, read as () => number | null);
    this.metrics.push(m);
    return m;
  }

  histogram(name: string, help: string, buckets: number[]): Histogram {
    const m = new Histogram(name, help, buckets);
    this.metrics.push(m);
    return m;
  }

  render(): string {
    return `${this.metrics.flatMap((m) => m.render()).join('\n')}\n`;
  }
}

/** Latencies of the current telemetry window, for p50/p95/p99 (bounded: keeps the last `cap`). */
export class LatencyWindow {
  private values: number[] = [];
  constructor(private readonly cap = 10_000) {}

  add(ms: number): void {
    if (this.values.length >= this.cap) this.values.shift();
    this.values.push(ms);
  }

  /** Percentiles of the window, then start a new window. */
  take(): { p50: number; p95: number; p99: number; count: number } {
    const v = this.values.sort((a, b) => a - b);
    this.values = [];
    const at = (q: number): number => (v.length ? (v[Math.min(v.length - 1, Math.floor(q * v.length))] as number) : 0);
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), count: v.length };
  }
}
