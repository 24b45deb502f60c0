/** A stored batch of acked ids: its row id and how many ids it holds. */
export interface AckedBatch {
  ord: number;
  count: number;
}

/** What one ack transaction writes: the batch to insert (if any) and the old batches to delete. */
export interface AckedPlan {
  /** JSON array of the ids to store, or undefined when nothing is stored (capacity 0). */
  batchJson: string | undefined;
  /** Delete stored batches with `ord <=` this; undefined when none can go yet. */
  pruneUpTo: number | undefined;
  /** How many of the oldest stored batches that prune removes. */
  dropped: number;
}

/**
 * The SQLite queue's memory of recently acked ids (pure: the queue does the I/O).
 *
 * Duplicate checks read an in-memory set of the last `capacity` acked ids, newest last. On
 * disk the ids are kept one row per ack transaction (a JSON array) and whole rows are pruned
 * once the newer rows hold `capacity` ids: an ack of n samples writes one row instead of n
 * index entries plus n deletes. At open the set is rebuilt from the newest rows.
 */
export class AckedMemory {
  private readonly ids = new Set<string>();
  /** Stored batches, oldest first. */
  private batches: AckedBatch[] = [];
  /** Ids in stored batches (counted with repeats). */
  private stored = 0;
  /** Highest batch row id this memory has taken in (its own or another connection's). */
  private seenOrd = 0;

  constructor(readonly capacity: number) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Rebuild from the stored rows: `batches` oldest first, `newestFirst` their JSON arrays newest first. */
  load(batches: AckedBatch[], newestFirst: () => Iterable<string>): void {
    this.batches = batches;
    this.stored = batches.reduce((n, b) => n + b.count, 0);
    this.seenOrd = batches.at(-1)?.ord ?? 0;
    if (this.capacity === 0 || batches.length === 0) return;
    const newest: string[] = [];
    const seen = new Set<string>();
    rows: for (const json of newestFirst()) {
      const ids = JSON.parse(json) as string[];
      for (let i = ids.length - 1; i >= 0; i--) {
        const id = ids[i] as string;
        if (seen.has(id)) continue;
        seen.add(id);
        newest.push(id);
        if (newest.length >= this.capacity) break rows;
      }
    }
    for (let i = newest.length - 1; i >= 0; i--) this.ids.add(newest[i] as string);
  }

  /** What to write for an ack transaction that deleted `ids` (in ack order). */
  plan(ids: string[]): AckedPlan {
    if (this.capacity === 0) {
      // Nothing is remembered: whatever an earlier run with a larger capacity stored can go.
      const last = this.batches.at(-1);
      return { batchJson: undefined, pruneUpTo: last?.ord, dropped: this.batches.length };
    }
    let total = this.stored + ids.length;
    let dropped = 0;
    for (const batch of this.batches) {
      if (total - batch.count < this.capacity) break;
      total -= batch.count;
      dropped++;
    }
    return { batchJson: JSON.stringify(ids), pruneUpTo: dropped > 0 ? this.batches[dropped - 1]?.ord : undefined, dropped };
  }

  /** Apply a plan after its transaction committed; `ord` is the stored batch's row id. */
  committed(ids: string[], plan: AckedPlan, ord: number | undefined): void {
    for (const batch of this.batches.splice(0, plan.dropped)) this.stored -= batch.count;
    if (ord !== undefined) {
      this.batches.push({ ord, count: ids.length });
      this.stored += ids.length;
      if (ord > this.seenOrd) this.seenOrd = ord;
    }
    if (this.capacity === 0) return;
    for (const id of ids) {
      // Re-acked (captured again after it was forgotten): it is the newest now.
      this.ids.delete(id);
      this.ids.add(id);
    }
    for (const oldest of this.ids) {
      if (this.ids.size <= this.capacity) break;
      this.ids.delete(oldest);
    }
  }

  /** The newest batch row this memory knows: rows after it were stored by another connection. */
  get lastSeenOrd(): number {
    return this.seenOrd;
  }

  /**
   * Take in batches another connection stored (oldest first): the drain worker acks on its
   * own connection while the main thread's enqueues check for duplicates. The same capacity
   * rule as {@link plan} bounds what is kept, so this memory matches the writer's.
   */
  absorb(rows: Iterable<{ ord: number; ids: string }>): void {
    for (const row of rows) {
      const ids = JSON.parse(row.ids) as string[];
      this.committed(ids, this.plan(ids), row.ord);
    }
  }
}
