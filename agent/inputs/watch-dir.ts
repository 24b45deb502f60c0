import { appendFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { Logger } from 'pino';
import { errorLine, isEdgeloopError } from '../../shared/errors.js';
import type { InferResult } from '../../shared/schemas/index.js';
import type { ModelInput } from '../model/runtime.js';
import type { InferContext } from '../service.js';

export interface WatchOptions {
  dir: string;
  resultsFile: string;
  after: 'move' | 'delete';
  processedDir: string;
  failedDir: string;
  pollMs: number;
  extensions: string[];
  concurrency: number;
}

export interface WatchStats {
  processed: number;
  failed: number;
  pending: number;
}

/**
 * A watched directory for cameras that drop image files. Polling, not fs.watch: it behaves
 * the same on every filesystem (network mounts, SD cards) and survives restarts. A file is
 * taken only once its size stopped changing between two polls, so a half-written JPEG is not
 * read. Results go to a JSON-lines file; processed files are moved or deleted; a file that
 * fails is moved to the failed directory, never deleted, with its error in the results.
 */
export class DirectoryWatcher {
  private timer: NodeJS.Timeout | null = null;
  private readonly seen = new Map<string, number>();
  private readonly inProgress = new Set<string>();
  private stopped = false;
  private scanning: Promise<void> | null = null;
  readonly stats: WatchStats = { processed: 0, failed: 0, pending: 0 };
  private readonly log: Logger;

  constructor(
    private readonly opts: WatchOptions,
    private readonly infer: (input: ModelInput, ctx: InferContext) => Promise<InferResult[]>,
    log: Logger,
  ) {
    this.log = log.child({ component: 'watch' });
  }

  async start(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    if (this.opts.after === 'move') await mkdir(this.opts.processedDir, { recursive: true });
    await mkdir(this.opts.failedDir, { recursive: true });
    this.log.info({ dir: this.opts.dir, results: this.opts.resultsFile }, 'watching directory');
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.scanning = this.scan()
        .then(() => undefined)
        .catch((err: unknown) => this.log.error({ err }, 'directory scan failed'))
        .finally(() => {
          this.scanning = null;
          this.schedule(this.opts.pollMs);
        });
    }, ms);
  }

  /** One pass: find stable files and process them with bounded concurrency. */
  async scan(): Promise<number> {
    const names = await readdir(this.opts.dir).catch(() => [] as string[]);
    const ready: string[] = [];
    const exts = this.opts.extensions.map((e) => e.toLowerCase());
    for (const name of names.sort()) {
      if (name.startsWith('.') || !exts.includes(extname(name).toLowerCase())) continue;
      const path = join(this.opts.dir, name);
      if (this.inProgress.has(path)) continue;
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) continue;
      const prev = this.seen.get(path);
      this.seen.set(path, st.size);
      if (prev === st.size && st.size > 0) ready.push(path);
    }
    this.stats.pending = ready.length;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ready.length && !this.stopped) {
        const path = ready[next++]!;
        this.inProgress.add(path);
        try {
          await this.processFile(path);
        } finally {
          this.inProgress.delete(path);
          this.seen.delete(path);
          this.stats.pending = Math.max(0, this.stats.pending - 1);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.opts.concurrency) }, worker));
    return ready.length;
  }

  private async processFile(path: string): Promise<void> {
    const file = basename(path);
    let line: Record<string, unknown>;
    let ok = false;
    try {
      const bytes = await readFile(path);
      const [result] = await this.infer({ kind: 'image', bytes }, { source: 'dir', origin: file });
      line = { file, ts: new Date().toISOString(), ...result };
      ok = true;
    } catch (err) {
      const code = isEdgeloopError(err) ? err.code : 'AGENT_INFERENCE_FAILED';
      line = { file, ts: new Date().toISOString(), error: { code, message: errorLine(err) } };
      this.log.warn({ file, code }, 'file could not be processed; moved to the failed directory');
    }
    // The result line is written before the file is moved: a crash in between re-processes
    // the file (a duplicate line) rather than losing its result.
    await appendFile(this.opts.resultsFile, `${JSON.stringify(line)}\n`);
    if (ok) {
      this.stats.processed++;
      if (this.opts.after === 'delete') await rm(path, { force: true });
      else await rename(path, join(this.opts.processedDir, file));
    } else {
      this.stats.failed++;
      await rename(path, join(this.opts.failedDir, file)).catch((err: unknown) => this.log.error({ err, file }, 'cannot move failed file'));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.scanning) await this.scanning;
  }
}
