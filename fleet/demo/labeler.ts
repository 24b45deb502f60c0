import { SIMULATED_LABELER, type Labels } from '../app/labels/labels.js';
import type { SampleIngest } from '../app/samples/ingest.js';

/** The actor every simulated label carries (`labeled_by` in dataset manifests; the console marks it). */

export interface SimulatedLabelerOptions {
  ingest: SampleIngest;
  labels: Labels;
  /** Ground truth of a fed frame: the label the demo rendered, by device and file name. */
  truth(deviceId: string, origin: string): string | undefined;
  /** Labels per second, like a person at the keyboard (a human does about 1/s). */
  ratePerS: number;
  /** Stop after this many labels (the budget the `loop` benchmark checks). */
  budget: number;
}

/**
 * A labeler that works the labeling queue like a person would (oldest unlabeled sample
 * first, at a steady pace) but answers from the ground truth of the frames the demo fed.
 * Every label it gives is recorded with actor `simulated-labeler`, so dataset manifests and
 * the console show that these labels were not made by people. Samples whose frame the demo
 * does not know are skipped, never guessed.
 */
export class SimulatedLabeler {
  labeled = 0;
  skipped = 0;
  private timer: NodeJS.Timeout | null = null;
  private cursor: string | undefined;
  private readonly passed = new Set<string>();

  constructor(private readonly o: SimulatedLabelerOptions) {}

  start(): void {
    if (this.timer) return;
    const every = Math.max(10, 1000 / this.o.ratePerS);
    this.timer = setInterval(() => this.step(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get exhausted(): boolean {
    return this.labeled >= this.o.budget;
  }

  /** Label one sample (the oldest unlabeled one not looked at yet). */
  step(): boolean {
    if (this.exhausted) return false;
    const page = this.o.ingest.query({ labeled: false, limit: 1, ...(this.cursor ? { cursor: this.cursor } : {}) });
    const s = page.items[0];
    if (!s) return false;
    if (page.next_cursor) this.cursor = page.next_cursor;
    const label = s.meta.origin ? this.o.truth(s.device_id, s.meta.origin) : undefined;
    if (label === undefined) {
      if (this.passed.has(s.sample_id)) return false;
      this.passed.add(s.sample_id);
      this.skipped++;
      return true;
    }
    this.o.labels.assign(s.sample_id, label, { actor: SIMULATED_LABELER });
    this.labeled++;
    return true;
  }
}
