/**
 * Put `key` last in `map` (most recently used), with `value`, and drop the least recently used
 * entries beyond `max`: a per-peer table that one flood of new peers cannot grow without bound.
 */
export function touchBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): V {
  map.delete(key);
  map.set(key, value);
  for (const oldest of map.keys()) {
    if (map.size <= max) break;
    map.delete(oldest);
  }
  return value;
}
