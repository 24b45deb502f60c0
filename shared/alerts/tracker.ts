import { iou } from '../inference/detect.js';
import type { Box } from './geometry.js';

/** A detection with the identity the tracker gave it. */
export interface Tracked {
  track: number;
  label: string;
  score: number;
  box: Box;
}

interface Track {
  id: number;
  label: string;
  box: Box;
  lastSeen: number;
}

/**
 * A simple IoU tracker: each detection joins the live track of the same label it overlaps most
 * (IoU at least `minIou`, greedy by IoU, one detection per track), or starts a new track. A
 * track not seen for `ttlMs` is forgotten. Enough for "the same person stayed in the zone for
 * 10 s" at camera frame rates, where an object moves little between frames; not a re-identifier.
 */
export class IouTracker {
  private tracks: Track[] = [];
  private nextId = 1;

  constructor(
    private readonly ttlMs: number,
    private readonly minIou = 0.3,
    /** Live tracks kept at most (a hostile or broken detector cannot grow memory without bound). */
    private readonly maxTracks = 10_000,
  ) {}

  update(detections: ReadonlyArray<{ label: string; score: number; box: Box }>, now: number): Tracked[] {
    this.tracks = this.tracks.filter((t) => now - t.lastSeen <= this.ttlMs);
    const pairs: Array<{ d: number; t: number; v: number }> = [];
    detections.forEach((d, di) => {
      this.tracks.forEach((t, ti) => {
        if (t.label !== d.label) return;
        const v = iou(d.box, t.box);
        if (v >= this.minIou) pairs.push({ d: di, t: ti, v });
      });
    });
    pairs.sort((a, b) => b.v - a.v);
    const byDetection = new Map<number, Track>();
    const usedTracks = new Set<number>();
    for (const p of pairs) {
      if (byDetection.has(p.d) || usedTracks.has(p.t)) continue;
      byDetection.set(p.d, this.tracks[p.t]!);
      usedTracks.add(p.t);
    }
    return detections.map((d, di) => {
      let t = byDetection.get(di);
      if (!t) {
        t = { id: this.nextId++, label: d.label, box: d.box, lastSeen: now };
        if (this.tracks.length < this.maxTracks) this.tracks.push(t);
      }
      t.box = d.box;
      t.lastSeen = now;
      return { track: t.id, label: d.label, score: d.score, box: d.box };
    });
  }

  get size(): number {
    return this.tracks.length;
  }
}
