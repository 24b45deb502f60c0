import { open, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DigitSet } from '../ml/mnist-data.js';
import { renderDigitPng, type CameraDrift } from '../ml/digits.js';

/** What the demo knows about a frame it fed: the ground truth the simulated labeler uses. */
export interface FedFrame {
  label: number;
  drifted: boolean;
  fedAt: number;
}

/** One line of an agent's results file (the directory watcher's JSON lines). */
export interface ResultLine {
  file: string;
  ts: string;
  label?: string;
  model_version?: string;
  score?: number;
  error?: { code: string };
  outlier?: { captured: boolean; sample_id?: string };
}

/**
 * One camera of the demo: a folder an agent watches. Frames are written under a dot-name
 * and renamed, so the watcher never sees a half-written file; the results file the agent
 * appends to is read incrementally.
 */
export class Camera {
  readonly truth = new Map<string, FedFrame>();
  readonly results: ResultLine[] = [];
  fed = 0;
  drift: CameraDrift | null = null;
  private readOffset = 0;
  private partial = '';

  constructor(
    readonly deviceId: string,
    readonly site: string,
    readonly inbox: string,
    readonly resultsFile: string,
    private readonly digits: DigitSet,
    /** Where this camera starts in the feed range (cameras do not show the same digit at once). */
    private readonly start: number,
  ) {}

  /** Render and drop the next frame; returns its file name. */
  async feed(now: number): Promise<string> {
    const n = (this.start + this.fed) % this.digits.images.length;
    const name = `frame-${String(this.fed).padStart(6, '0')}.png`;
    const png = await renderDigitPng(this.digits.images[n]!, this.drift ?? {});
    await writeFile(join(this.inbox, `.${name}`), png);
    await rename(join(this.inbox, `.${name}`), join(this.inbox, name));
    this.truth.set(name, { label: this.digits.labels[n]!, drifted: this.drift !== null, fedAt: now });
    this.fed++;
    return name;
  }

  /** Read the result lines appended since the last call. */
  async poll(): Promise<ResultLine[]> {
    const fh = await open(this.resultsFile, 'r').catch(() => null);
    if (!fh) return [];
    try {
      const { size } = await fh.stat();
      if (size <= this.readOffset) return [];
      const buf = Buffer.alloc(size - this.readOffset);
      await fh.read(buf, 0, buf.length, this.readOffset);
      this.readOffset = size;
      const text = this.partial + buf.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      const fresh = lines.filter(Boolean).map((l) => JSON.parse(l) as ResultLine);
      this.results.push(...fresh);
      return fresh;
    } finally {
      await fh.close();
    }
  }

  /** Ground truth of a frame this camera fed (by file name), for the simulated labeler. */
  truthOf(file: string): FedFrame | undefined {
    return this.truth.get(file);
  }
}

/** Accuracy of results against the ground truth; null when there is nothing to score. */
export function accuracyOf(cam: Camera, rows: readonly ResultLine[]): { accuracy: number | null; n: number } {
  let ok = 0;
  let n = 0;
  for (const r of rows) {
    const t = cam.truth.get(r.file);
    if (!t || r.label === undefined) continue;
    n++;
    if (Number(r.label) === t.label) ok++;
  }
  return { accuracy: n ? ok / n : null, n };
}
