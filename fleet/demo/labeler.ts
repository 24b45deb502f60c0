import { SIMULATED_LABELER, type Labels } from '../app/labels/labels.js';
import type { SampleIngest } from '../app/samples/ingest.js';

/** What the simulated labeler answers for a frame: a class, or a detector's boxes in the frame's pixels. */
export type SimulatedLabel = { label: string } | { boxes: Array<{ label: string; box: [number, number, number, number] }> };

export interface SimulatedLabelerOptions {
  ingest: SampleIngest;
  labels: Labels;
  /** Ground truth of a fed frame, by device and file name: what the demo drew. */
  truth(deviceId: string, origin: string): SimulatedLabel | undefined;
  /** Labels per second, like a person at the keyboard (a human does about 1/s). */
  ratePerS: number;
  /** Stop after this many labels (the budget the `loop` benchmark checks). */
  budget: number;
  /** A label the fleet refused (it is skipped, not retried). */
  onRefused?(sampleId: string, err: Error): void;
}

/**
 * A labeler that works the labeling queue like a person would (oldest unlabeled sample
 * first, at a steady pace) but answers from the ground truth of the frames the demo fed: a
 * class for a classifier's sample, the boxes the scene was drawn with for a detector's.
 * Every label it gives is recorded with actor `simulated-labeler`, so dataset manifests and
 * the console show that these labels were not made by people. Samples whose frame the demo
 * does not know are skipped, never guessed.
 */
export class SimulatedLabeler {
  labeled = 0;
  skipped = 0;
  /** Box labels given (detection). */
  boxes = 0;
  private timer: NodeJS.Timeout | null = null;
  private cursor: string | undefined;
  private busy: Promise<boolean> | null = null;
  private readonly passed = new Set<string>();

  constructor(private readonly o: SimulatedLabelerOptions) {}

  start(): void {
    if (this.timer) return;
    const every = Math.max(10, 1000 / this.o.ratePerS);
    this.timer = setInterval(() => {
      // One label at a time: a box label is checked against the model's package (async).
      if (!this.busy) this.busy = this.step().finally(() => (this.busy = null));
    }, every);
    this.timer.unref();
  }

  /** Stops labeling; resolves once the label in hand is recorded. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.busy?.catch(() => undefined);
  }

  get exhausted(): boolean {
    return this.labeled >= this.o.budget;
  }

  /** Label one sample (the oldest unlabeled one not looked at yet). */
  async step(): Promise<boolean> {
    if (this.exhausted) return false;
    const page = this.o.ingest.query({ labeled: false, limit: 1, ...(this.cursor ? { cursor: this.cursor } : {}) });
    const s = page.items[0];
    if (!s) return false;
    if (page.next_cursor) this.cursor = page.next_cursor;
    const answer = s.meta.origin ? this.o.truth(s.device_id, s.meta.origin) : undefined;
    if (answer === undefined) {
      if (this.passed.has(s.sample_id)) return false;
      this.passed.add(s.sample_id);
      this.skipped++;
      return true;
    }
    try {
      if ('boxes' in answer) {
        await this.o.labels.assignBoxes(s.sample_id, answer.boxes, { actor: SIMULATED_LABELER });
        this.boxes += answer.boxes.length;
      } else this.o.labels.assign(s.sample_id, answer.label, { actor: SIMULATED_LABELER });
    } catch (err) {
      this.passed.add(s.sample_id);
      this.skipped++;
      this.o.onRefused?.(s.sample_id, err as Error);
      return true;
    }
    this.labeled++;
    return true;
  }
}
