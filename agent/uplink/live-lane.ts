/** A live message: telemetry or status, sent at most once, never persisted. */
export interface LiveMessage {
  topic: string;
  payload: Uint8Array;
  retain: boolean;
  /** Publishes already tried (a message cut off by a disconnect gets one more). */
  attempts?: number;
}

/**
 * Bounded FIFO for live messages. When full, the oldest message is dropped and counted:
 * for telemetry and status the newest value is the useful one, and memory must stay
 * bounded however long the link is down (the SQLite queue is where durable data waits).
 */
export class LiveLane {
  private readonly items: Array<LiveMessage | undefined>;
  private head = 0;
  private size = 0;
  /** Messages dropped because the lane was full. */
  dropped = 0;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('live lane capacity must be at least 1');
    this.items = new Array<LiveMessage | undefined>(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Append; drops the oldest when full. Returns false when something was dropped. */
  push(msg: LiveMessage): boolean {
    if (this.size === this.capacity) {
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.size--;
      this.dropped++;
      this.items[(this.head + this.size) % this.capacity] = msg;
      this.size++;
      return false;
    }
    this.items[(this.head + this.size) % this.capacity] = msg;
    this.size++;
    return true;
  }

  /**
   * Put a message back at the front (its publish was cut off by a disconnect). When the
   * lane is full the newer messages win and this one is dropped; returns false then.
   */
  unshift(msg: LiveMessage): boolean {
    if (this.size === this.capacity) {
      this.dropped++;
      return false;
    }
    this.head = (this.head - 1 + this.capacity) % this.capacity;
    this.items[this.head] = msg;
    this.size++;
    return true;
  }

  peek(): LiveMessage | undefined {
    return this.size === 0 ? undefined : this.items[this.head];
  }

  shift(): LiveMessage | undefined {
    if (this.size === 0) return undefined;
    const msg = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    return msg;
  }
}
