/**
 * MQTT topic filter matching (MQTT 3.1.1 section 4.7): `+` matches one level, a trailing
 * `#` matches the parent and any number of levels. Used to route incoming messages to the
 * handlers of the filter(s) they matched, since a client gets one message stream.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  // [MQTT-4.7.2-1]: wildcards at the first level do not match topics starting with `$`.
  if ((f[0] === '+' || f[0] === '#') && topic.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
