import { describe, expect, it } from 'vitest';
import { createMemoryQueue } from '../../agent/queue/memory-queue.js';
import { agentCode, fakeClock, sample } from './helpers.js';
import { queueContract } from './queue-contract.js';

queueContract('memory', (opts) => createMemoryQueue(opts));

describe('memory queue', () => {
  it('remembers only the configured number of acked ids', () => {
    const q = createMemoryQueue({ quotaBytes: 1_000_000, clock: fakeClock(), ackedMemory: 2 });
    q.enqueueMany([sample('a', 1), sample('b', 1), sample('c', 1)]);
    q.ack(['a', 'b', 'c']);
    // 'a' fell out of the memory: a re-capture is accepted again; 'c' is still a duplicate.
    expect(q.enqueue(sample('a', 1)).accepted).toBe(true);
    expect(q.enqueue(sample('c', 1)).duplicate).toBe(true);
  });

  it('refuses a non-positive quota with CONFIG_INVALID', () => {
    expect(() => createMemoryQueue({ quotaBytes: 0, clock: fakeClock() })).toThrow(expect.objectContaining({ code: agentCode('CONFIG_INVALID') }));
  });
});
