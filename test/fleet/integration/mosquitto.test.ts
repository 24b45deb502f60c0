import { afterAll, beforeAll, describe, it, onTestFailed } from 'vitest';
import { mosquittoSkipReason, startMosquitto, type BrokerHandle } from '../../helpers/broker.js';
import { fullRollout } from './full-rollout.js';
import { explain, setUpScenario, tearDown, type Scenario } from './harness.js';

const skip = mosquittoSkipReason();
let mosquitto: BrokerHandle | null = null;
let s: Scenario | undefined;

beforeAll(async () => {
  if (skip) return;
  mosquitto = await startMosquitto();
  // The fleet and every agent use mosquitto (anonymous access; the credentials from
  // agentConfigFor are sent and ignored): the fleet's own broker does not run.
  s = await setUpScenario({ n: 10, brokerUrl: mosquitto!.url });
});
afterAll(async () => {
  await tearDown(s);
  await mosquitto?.close();
});

describe.skipIf(skip !== null)(`fleet service + 10 real agents on mosquitto${skip ? ` (skipped: ${skip})` : ''}`, () => {
  // 10 real agents: ~35 s alone, much longer beside the rest of the suite on 2 shared cores.
  it('rolls v2 out through shadow, canary and waves over an external broker', { timeout: 180_000 }, async () => {
    onTestFailed(() => console.log(explain(s!.svc, 'ro-mosquitto')));
    await fullRollout(s!, 'ro-mosquitto');
  });
});
