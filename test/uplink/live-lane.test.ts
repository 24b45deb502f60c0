import { describe, expect, it } from 'vitest';
import { LiveLane } from '../../agent/uplink/live-lane.js';

const msg = (n: number) => ({ topic: `t/${n}`, payload: new Uint8Array([n]), retain: false });

describe('LiveLane', () => {
  it('is FIFO', () => {
    const lane = new LiveLane(4);
    lane.push(msg(1));
    lane.push(msg(2));
    expect(lane.shift()?.topic).toBe('t/1');
    expect(lane.peek()?.topic).toBe('t/2');
    expect(lane.length).toBe(1);
  });

  it('keeps the newest messages when full and counts the drops', () => {
    const lane = new LiveLane(3);
    for (let i = 1; i <= 7; i++) lane.push(msg(i));
    expect(lane.dropped).toBe(4);
    expect([lane.shift(), lane.shift(), lane.shift(), lane.shift()].map((m) => m?.topic)).toEqual(['t/5', 't/6', 't/7', undefined]);
  });
});

describe('LiveLane.unshift', () => {
  it('puts a message back at the front', () => {
    const lane = new LiveLane(3);
    lane.push(msg(2));
    expect(lane.unshift(msg(1))).toBe(true);
    expect([lane.shift(), lane.shift()].map((m) => m?.topic)).toEqual(['t/1', 't/2']);
  });

  it('drops the returning message when the lane is full of newer ones', () => {
    const lane = new LiveLane(2);
    lane.push(msg(2));
    lane.push(msg(3));
    expect(lane.unshift(msg(1))).toBe(false);
    expect(lane.dropped).toBe(1);
    expect(lane.shift()?.topic).toBe('t/2');
  });

  it('wraps around the ring', () => {
    const lane = new LiveLane(3);
    lane.push(msg(1));
    lane.shift();
    lane.unshift(msg(0));
    lane.push(msg(5));
    expect([lane.shift(), lane.shift(), lane.shift()].map((m) => m?.topic)).toEqual(['t/0', 't/5', undefined]);
  });
});
