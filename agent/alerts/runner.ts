import type { Logger } from 'pino';
import { errorLine, isEdgeloopError } from '../../shared/errors.js';
import { AgentError } from '../errors.js';

export interface RunnerLimits {
  timeoutMs: number;
  retries: number;
  maxQueue: number;
  concurrency: number;
}

/** One attempt of an action; `signal` aborts when the attempt timed out. */
export type Attempt<T> = (item: T, signal: AbortSignal) => Promise<void>;

/** Scheduling of retries, passed in so tests need not wait (conventions rule 2). */
export type Delay = (ms: number) => Promise<void>;

const realDelay: Delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/**
 * Runs one action for a stream of alerts with bounded resources: at most `maxQueue` alerts wait
 * (more are refused, `AGENT_ALERT_ACTION_OVERLOADED`), `concurrency` run at once, each attempt is
 * cut at `timeoutMs` (`AGENT_ALERT_ACTION_TIMEOUT`), failures are retried `retries` times with
 * doubling backoff, then logged as `AGENT_ALERT_ACTION_FAILED`. A dead webhook therefore costs
 * at most `maxQueue` small records, never growing memory, and never holds up another action.
 */
export class ActionRunner<T extends { alert_id: string }> {
  private readonly waiting: T[] = [];
  private running = 0;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  readonly counts = { ok: 0, failed: 0, timeout: 0, overloaded: 0 };

  constructor(
    readonly name: string,
    private readonly limits: RunnerLimits,
    private readonly attempt: Attempt<T>,
    private readonly log: Logger,
    private readonly delay: Delay = realDelay,
  ) {}

  /** Queue an alert; false (and a log line) when the queue is full. */
  submit(item: T): boolean {
    if (this.closed) return false;
    if (this.waiting.length >= this.limits.maxQueue) {
      this.counts.overloaded++;
      const e = new AgentError('ALERT_ACTION_OVERLOADED', `action ${this.name} has ${this.waiting.length} alerts waiting (max_queue ${this.limits.maxQueue}); this alert is not run by it`);
      this.log.warn({ action: this.name, alert: item.alert_id, code: e.code, waiting: this.waiting.length }, e.message);
      return false;
    }
    this.waiting.push(item);
    this.pump();
    return true;
  }

  get depth(): number {
    return this.waiting.length + this.running;
  }

  /** Resolves when nothing waits or runs. */
  idle(): Promise<void> {
    if (this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stop taking alerts; those waiting are dropped (logged), those running finish or time out. */
  close(): Promise<void> {
    this.closed = true;
    if (this.waiting.length) this.log.warn({ action: this.name, dropped: this.waiting.length }, 'alert action stopped with alerts waiting');
    this.waiting.length = 0;
    return this.idle();
  }

  private pump(): void {
    while (this.running < this.limits.concurrency && this.waiting.length > 0) {
      const item = this.waiting.shift()!;
      this.running++;
      void this.runOne(item).finally(() => {
        this.running--;
        this.pump();
        if (this.depth === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
    }
  }

  private async runOne(item: T): Promise<void> {
    let last: AgentError | null = null;
    for (let attempt = 0; attempt <= this.limits.retries; attempt++) {
      if (attempt > 0) await this.delay(Math.min(30_000, 500 * 2 ** (attempt - 1)));
      try {
        await this.withTimeout(item);
        this.counts.ok++;
        this.log.info({ action: this.name, alert: item.alert_id, attempts: attempt + 1 }, 'alert action done');
        return;
      } catch (err) {
        last = isEdgeloopError(err) && (err.code === 'AGENT_ALERT_ACTION_TIMEOUT' || err.code === 'AGENT_ALERT_ACTION_FAILED') ? (err as AgentError) : new AgentError('ALERT_ACTION_FAILED', `action ${this.name}: ${errorLine(err)}`, { cause: err });
        if (this.closed) break;
      }
    }
    if (last!.code === 'AGENT_ALERT_ACTION_TIMEOUT') this.counts.timeout++;
    else this.counts.failed++;
    this.log.error({ action: this.name, alert: item.alert_id, code: last!.code, attempts: this.limits.retries + 1, reason: last!.message }, 'alert action failed');
  }

  private async withTimeout(item: T): Promise<void> {
    const ctl = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new AgentError('ALERT_ACTION_TIMEOUT', `action ${this.name} took longer than ${this.limits.timeoutMs} ms`);
        ctl.abort(e);
        reject(e);
      }, this.limits.timeoutMs);
    });
    try {
      await Promise.race([this.attempt(item, ctl.signal), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
