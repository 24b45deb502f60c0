import { describe, expect, it } from 'vitest';
import { topicMatches } from '../../agent/uplink/topic-match.js';

describe('topicMatches', () => {
  it.each([
    ['a/b/c', 'a/b/c', true],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/d', false],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['+/b', '$SYS/b', false],
    ['#', '$SYS/x', false],
    ['edgeloop/v1/devices/+/samples', 'edgeloop/v1/devices/dev-1/samples', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
  ])('%s vs %s -> %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});
