import { open, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What the demo knows about a frame it fed: the ground truth the simulated labeler uses. */
export interface FedFrame<T> {
  truth: T;
  drifted: boolean;
  fedAt: number;
}

/** A detection as the agent writes it on a result line: original-image pixels. */
export interface ResultDetection {
  label: string;
  score: number;
  box: [number, number, number, number];
}

/** One line of an agent's results file (the directory watcher's JSON lines). */
export interface ResultLine {
  file: string;
  ts: string;
  label?: string;
  model_version?: string;
  score?: number;
  detections?: ResultDetection[];
  error?: { code: string };
  outlier?: { captured: boolean; sample_id?: string };
}

/** Frame `n` of a camera's feed, rendered as the camera sees it (drifted or not), with its ground truth. */
export type RenderFrame<T> = (n: number, drifted: boolean) => Promise<{ png: Buffer; truth: T }>;

/**
 * One camera of the demo: a folder an agent watches. Frames are written under a dot-name
 * and renamed, so the watcher never sees a half-written file; the results file the agent
 * appends to is read incrementally.
 */
export class Camera<T> {
  readonly truth = new Map<string, FedFrame<T>>();
  readonly results: ResultLine[] = [];
  fed = 0;
  /** Whether the camera sees the drifted scene now (what the drift looks like is the scene's). */
  drifted = false;
  private readOffset = 0;
  private partial = '';

  constructor(
    readonly deviceId: string,
    readonly site: string,
    readonly inbox: string,
    readonly resultsFile: string,
    private readonly render: RenderFrame<T>,
    /** Where this camera starts in the feed (cameras do not show the same frames at once). */
    private readonly start: number,
  ) {}

  /** Render and drop the next frame; returns its file name. */
  async feed(now: number): Promise<string> {
    const name = `frame-${String(this.fed).padStart(6, '0')}.png`;
    const { png, truth } = await this.render(this.start + this.fed, this.drifted);
    await writeFile(join(this.inbox, `.${name}`), png);
    await rename(join(this.inbox, `.${name}`), join(this.inbox, name));
    this.truth.set(name, { truth, drifted: this.drifted, fedAt: now });
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
  truthOf(file: string): FedFrame<T> | undefined {
    return this.truth.get(file);
  }
}
