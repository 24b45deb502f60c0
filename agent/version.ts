import { readFileSync } from 'node:fs';

/** The agent's own version, from package.json (reported in device status). */
export const AGENT_VERSION: string = (() => {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      /* try the next layout (sources vs dist/) */
    }
  }
  return '0.0.0';
})();
