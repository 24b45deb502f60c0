/**
 * Group commit: coalesce items submitted close together into one `commit(batch)` call.
 *
 * Why: with `synchronous=FULL` every SQLite commit is an fsync (milliseconds on an SD card),
 * so one transaction per capture caps throughput at the disk's fsync rate. Captures that
 * arrive while a commit is running (better-sqlite3 blocks the event loop meanwhile) or within
 * the same tick are written together, and each caller's promise resolves only after the
 * batch committed: acknowledged still means durable.
 */

export interface GroupCommitOptions {
  /**
   * How long the first item of a batch may wait for company. 0 (the default) flushes on the
   * next `setImmediate`, i.e. after everything already queued in this tick and pending I/O.
   */
  maxDelayMs?: number;
  /** Flush as soon as this many items are waiting (bounds latency and transaction size). Default 512. */
  maxBatch?: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (reason: unknown) => void;
}

export class GroupCommitter<I, O> {
  private pending: Array<Pending<I, O>> = [];
  private cancelScheduled: (() => void) | undefined;
  private readonly maxDelayMs: number;
  private readonly maxBatch: number;

  /** `commit` writes the whole batch atomically and returns one result per item, in order. */
  constructor(
    private readonly commit: (items: I[]) => O[],
    opts: GroupCommitOptions = {},
  ) {
    this.maxDelayMs = opts.maxDelayMs ?? 0;
    this.maxBatch = Math.max(1, opts.maxBatch ?? 512);
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else this.schedule();
    });
  }

  /** Number of items waiting for the next commit. */
  get size(): number {
    return this.pending.length;
  }

  /** Commit everything waiting now (used by the timer, by a full batch and by `close`). */
  flush(): void {
    this.cancelScheduled?.();
    this.cancelScheduled = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let results: O[];
    try {
      results = this.commit(batch.map((p) => p.item));
    } catch (err) {
      // The transaction rolled back: nothing of this batch is stored, so no one may be told it is.
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i] as O));
  }

  private schedule(): void {
    if (this.cancelScheduled) return;
    if (this.maxDelayMs > 0) {
      const timer = setTimeout(() => this.flush(), this.maxDelayMs);
      this.cancelScheduled = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(() => this.flush());
      this.cancelScheduled = () => clearImmediate(immediate);
    }
  }
}
