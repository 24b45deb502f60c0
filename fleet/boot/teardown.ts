import type { Logger } from 'pino';

/**
 * What a start opened, closed in reverse: each start step pushes its own stop, so `stop()`
 * mirrors the start and a failure half-way through a start releases exactly what was opened
 * before it. A failing step is logged and the rest still run; the first failure is rethrown.
 */
export class Teardown {
  private readonly steps: Array<{ name: string; run: () => void | Promise<void> }> = [];

  constructor(private readonly log: Logger) {}

  push(name: string, run: () => void | Promise<void>): void {
    this.steps.push({ name, run });
  }

  async run(): Promise<void> {
    let first: unknown = null;
    for (let s = this.steps.pop(); s; s = this.steps.pop()) {
      try {
        await s.run();
      } catch (err) {
        this.log.error({ step: s.name, err }, 'a stop step failed');
        first ??= err;
      }
    }
    if (first !== null) throw first;
  }

  /** Start steps in `body`; when one throws, stop what the earlier ones opened, then rethrow. */
  async start<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (err) {
      await this.run().catch(() => undefined);
      throw err;
    }
  }
}
