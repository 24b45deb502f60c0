import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { startTestAgent } from '../helpers/agent.js';
import { patternImage, tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
let agent: Agent;
let url: string;
let lines: Array<Record<string, unknown>>;

beforeAll(async () => {
  tmp = tempDir();
  ({ agent, url, lines } = await startTestAgent(join(tmp.dir, 'data')));
});
afterAll(async () => {
  await agent.stop();
  tmp.cleanup();
});

describe('an agent with no model yet', () => {
  it('answers 503 AGENT_MODEL_NOT_LOADED and logs it as a state (warn, no stack), not as a failure', async () => {
    const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(1) });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('AGENT_MODEL_NOT_LOADED');
    const line = lines.find((l) => l.code === 'AGENT_MODEL_NOT_LOADED');
    expect(line).toMatchObject({ level: 40, msg: 'request rejected', status: 503, route: 'POST /v1/infer' });
    expect(line).not.toHaveProperty('err');
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});
