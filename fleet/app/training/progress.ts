/**
 * The learning loop's progress log: numbered lines per run, kept in memory (the last
 * PROGRESS_KEEP of each run) for the API, the CLI and the console, and passed to listeners as
 * they happen.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../../shared/ids.js';

export type LoopPhase = 'queued' | 'dataset' | 'train' | 'push' | 'evaluate' | 'gate' | 'rollout' | 'done' | 'failed';

/** One progress line of a run, for the CLI and the console. */
export interface LoopProgress {
  seq: number;
  run: string;
  model: string;
  phase: LoopPhase;
  at: string;
  message: string;
  fraction?: number;
  metrics?: Record<string, number>;
}

/** Writes one progress line of a run. */
export type Emit = (phase: LoopPhase, message: string, extra?: { fraction?: number; metrics?: Record<string, number> }) => void;

export const PROGRESS_KEEP = 500;

export class ProgressLog {
  private readonly byRun = new Map<string, LoopProgress[]>();
  private readonly listeners = new Set<(p: LoopProgress) => void>();
  private seq = 0;

  constructor(private readonly o: { clock: Clock; log: Logger }) {}

  /** Lines of a run after `afterSeq`. */
  since(runId: string, afterSeq = 0): LoopProgress[] {
    return (this.byRun.get(runId) ?? []).filter((p) => p.seq > afterSeq);
  }

  /** Every run's lines as they are written; returns the unsubscribe function. */
  subscribe(listener: (p: LoopProgress) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The emitter of one run's lines; `onProgress` hears only this run. A listener that throws is
   * logged and ignored: progress never stops a run.
   */
  forRun(run: string, model: string, onProgress?: (p: LoopProgress) => void): Emit {
    return (phase, message, extra = {}) => {
      const p: LoopProgress = { seq: ++this.seq, run, model, phase, at: new Date(this.o.clock.now()).toISOString(), message, ...extra };
      const list = this.byRun.get(run) ?? [];
      list.push(p);
      if (list.length > PROGRESS_KEEP) list.splice(0, list.length - PROGRESS_KEEP);
      this.byRun.set(run, list);
      for (const l of [...(onProgress ? [onProgress] : []), ...this.listeners]) {
        try {
          l(p);
        } catch (err) {
          this.o.log.warn({ run, err }, 'a progress listener threw');
        }
      }
    };
  }
}
