import { describe, expect, it } from 'vitest';
import { waitFor, waitUntil } from './wait.js';

describe('waitUntil / waitFor (the one polling helper)', () => {
  it('resolves once a sync or async condition holds', async () => {
    let n = 0;
    await waitUntil(() => ++n >= 3, 1000);
    expect(n).toBe(3);
    let m = 0;
    await waitUntil(async () => ++m >= 2, 1000, 'm to reach 2');
    expect(m).toBe(2);
  });

  it('names what it waited for: the given words, else the condition itself', async () => {
    await expect(waitUntil(() => false, 30, 'the broker')).rejects.toThrow('timed out after 30 ms waiting for the broker');
    const queue = { depth: 1 };
    await expect(waitUntil(() => queue.depth === 0, 30)).rejects.toThrow(/timed out after 30 ms waiting for .*queue\.depth === 0/);
  });

  it('keeps its deadline when each check is slow, and checks once more at the deadline', async () => {
    const started = performance.now();
    let checks = 0;
    const slow = async (): Promise<boolean> => {
      checks++;
      await new Promise((r) => setTimeout(r, 40));
      return false;
    };
    expect(await waitFor(slow, 100, 10)).toBe(false);
    // 100 ms at ~50 ms a round: 2 or 3 checks, not 100 / 10 of them.
    expect(checks).toBeLessThanOrEqual(4);
    expect(performance.now() - started).toBeLessThan(1000);
    // Checks every 1000 ms but the limit is 50: the second check is the one at the deadline.
    const t0 = performance.now();
    expect(await waitFor(() => performance.now() - t0 >= 40, 50, 1000)).toBe(true);
  });

  it('a condition that throws rejects at once with its own error', async () => {
    await expect(waitUntil(() => JSON.parse('{') as boolean, 5000)).rejects.toThrow(SyntaxError);
  });
});
