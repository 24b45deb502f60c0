/**
 * A rule set swapped into a running agent builds its actions (a site broker connection for an
 * `mqtt` action) before it goes in force. Regression: what a swap built stayed open when the
 * swap failed half-way or came while the agent stopped (a connection the stopped agent no
 * longer owned). Real agents and real aedes brokers; connections are counted at the broker.
 */
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Agent } from '../../../agent/agent.js';
import { parseRuleSet } from '../../../agent/alerts/load.js';
import { startTestAgent } from '../../helpers/agent.js';
import { startAedes, type AedesHandle } from '../../helpers/broker.js';
import { tempDir } from '../../helpers/packages.js';
import { waitUntil } from '../../helpers/wait.js';

let tmp: ReturnType<typeof tempDir>;
/** The running rule set's site broker, and the one the swapped-in set names (a new one per test, so nothing one test left open counts in another). */
let siteA: AedesHandle;
let siteB: AedesHandle;
let agent: Agent | null = null;
let n = 0;

beforeAll(async () => {
  tmp = tempDir('edgeloop-swap-rules-');
  siteA = await startAedes();
});
beforeEach(async () => {
  siteB = await startAedes();
});
afterEach(async () => {
  await agent?.stop();
  agent = null;
  await siteB?.close();
});
afterAll(async () => {
  await siteA?.close();
  tmp.cleanup();
});

/** An agent whose config rule set has one `mqtt` action on site A, connected there. */
async function agentOnSiteA(): Promise<Agent> {
  const before = siteA.broker.connectedClients;
  ({ agent } = await startTestAgent(join(tmp.dir, `agent-${n++}`), {
    alerts: { rules: [{ id: 'red', model: 'colours', labels: ['red'], actions: ['siren'] }], actions: { siren: { kind: 'mqtt', url: siteA.url, topic: 'site/siren' } } },
  }));
  await waitUntil(() => siteA.broker.connectedClients === before + 1, 20_000, 'the running rule set connected to site A');
  return agent;
}

/** A rule set whose `horn` action publishes to site B, plus `more` actions. */
const setOnSiteB = (more: Record<string, unknown> = {}): ReturnType<typeof parseRuleSet> =>
  parseRuleSet({ rules: [{ id: 'red', model: 'colours', labels: ['red'], actions: ['horn', ...Object.keys(more)] }], actions: { horn: { kind: 'mqtt', url: siteB.url, topic: 'site/horn' }, ...more } });

/**
 * Site B's connections once a probe client of the test's has connected and had a message of its
 * own back: a connection the agent opened before that has had time to be accepted. The probe is
 * counted, so the agent holds none there when this is 1.
 */
async function siteBConnectionsAfterProbe(): Promise<number> {
  const probe = await mqtt.connectAsync(siteB.url, { clientId: `probe-${n++}` });
  try {
    const echoed = new Promise<void>((resolve) => probe.once('message', () => resolve()));
    await probe.subscribeAsync('probe/echo', { qos: 1 });
    await probe.publishAsync('probe/echo', 'x', { qos: 1 });
    await echoed;
    return siteB.broker.connectedClients;
  } finally {
    await probe.endAsync();
  }
}

describe('swapping rule sets in a running agent releases what a failed swap built', () => {
  it('a rule set with an action that cannot be built is refused (the action named) and closes the site connection it opened; the running set stays', async () => {
    const a = await agentOnSiteA();
    // `horn` is built (connecting to site B) before `bad` fails: mqtt cannot connect to a URL without a protocol.
    const set = setOnSiteB({ bad: { kind: 'mqtt', url: 'plc-bridge', topic: 'site/x' } });
    await expect(a.swapRules(set)).rejects.toMatchObject({ code: 'AGENT_ALERT_RULES_INVALID', message: expect.stringContaining('actions.bad') });
    expect(await siteBConnectionsAfterProbe()).toBe(1);
    expect(a.alerts!.engine.rules.map((r) => r.id)).toEqual(['red']);
    expect(siteA.broker.connectedClients).toBe(1);
  });

  it('a rule set that arrives while the agent stops is refused and opens no site connection', async () => {
    const a = await agentOnSiteA();
    // The running set's site connection closing is the agent's stop closing its actions: the swap comes then.
    let swap: Promise<unknown> | null = null;
    siteA.broker.once('clientDisconnect', () => {
      swap = a.swapRules(setOnSiteB()).then(
        () => 'applied',
        (err: unknown) => err,
      );
    });
    await a.stop();
    agent = null;
    await waitUntil(() => swap !== null, 20_000, 'the swap during stop');
    expect(await swap).toMatchObject({ code: 'AGENT_RULE_SET_REFUSED', message: expect.stringContaining('stopping') });
    expect(await siteBConnectionsAfterProbe()).toBe(1);
  });

  it('a swap under way when the agent stops is closed by the stop', async () => {
    const a = await agentOnSiteA();
    const swap = a.swapRules(setOnSiteB()).then(
      () => 'applied',
      (err: unknown) => err,
    );
    await a.stop();
    agent = null;
    const outcome = await swap;
    // Either it went in force before the stop (and the stop closed it) or the stop refused it.
    expect(outcome === 'applied' || (outcome as { code?: string }).code === 'AGENT_RULE_SET_REFUSED').toBe(true);
    expect(await siteBConnectionsAfterProbe()).toBe(1);
    expect(siteA.broker.connectedClients).toBe(0);
  });
});
