import { prepareItem, type PreparedItem } from './item.js';
import type { GroupCommitter } from './group-commit.js';
import type { Clock, EnqueueResult, QueueItemInput } from './types.js';

/**
 * The enqueue side both queue implementations share: validate every item before writing
 * anything (one bad item must not half-apply a batch), then admit; `enqueueAsync` goes
 * through the group committer. Subclasses supply storage (`admitPrepared`) and the open check.
 */
export abstract class EnqueueFront {
  protected abstract readonly clock: Clock;
  protected abstract readonly quotaBytes: number;
  protected abstract readonly groupCommit: GroupCommitter<PreparedItem, EnqueueResult>;
  protected abstract assertOpen(): void;
  protected abstract admitPrepared(items: PreparedItem[]): EnqueueResult[];

  enqueue(item: QueueItemInput): EnqueueResult {
    return this.enqueueMany([item])[0] as EnqueueResult;
  }

  enqueueMany(items: QueueItemInput[]): EnqueueResult[] {
    this.assertOpen();
    const now = this.clock.now();
    const prepared = items.map((item) => prepareItem(item, now, this.quotaBytes));
    return this.admitPrepared(prepared);
  }

  enqueueAsync(item: QueueItemInput): Promise<EnqueueResult> {
    try {
      this.assertOpen();
      return this.groupCommit.submit(prepareItem(item, this.clock.now(), this.quotaBytes));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
