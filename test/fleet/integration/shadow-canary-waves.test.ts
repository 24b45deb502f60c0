import { afterAll, beforeAll, describe, it, onTestFailed } from 'vitest';
import { fullRollout } from './full-rollout.js';
import { explain, setUpScenario, tearDown, type Scenario } from './harness.js';

let s: Scenario | undefined;
beforeAll(async () => {
  s = await setUpScenario({ n: 10 });
});
afterAll(() => tearDown(s));

describe('fleet service + 10 real agents (embedded broker)', () => {
  // 10 real agents: ~35 s alone, much longer beside the rest of the suite on 2 shared cores.
  it('rolls v2 out through shadow, canary and waves; every agent ends on v2 and the log tells the story', { timeout: 180_000 }, async () => {
    onTestFailed(() => console.log(explain(s!.svc, 'ro-full')));
    await fullRollout(s!, 'ro-full');
  });
});
