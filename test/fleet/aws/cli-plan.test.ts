import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../fleet/edges/cli/main.js';
import { tempDir } from '../../helpers/packages.js';

const tmp = tempDir('edgeloop-aws-cli-');
afterAll(() => tmp.cleanup());

async function run(argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

describe('edgeloop aws plan (--dry-run --json, no credentials, no network)', () => {
  const cfgPath = join(tmp.dir, 'aws.json');
  writeFileSync(cfgPath, JSON.stringify({ region: 'eu-west-1', account_id: '123456789012', greengrass: { component_version: '1.0.0', rollout: { base_rate_per_minute: 5, maximum_per_minute: 50 } }, s3: { bucket: 'my-edgeloop' } }));

  it('prints one JSON line per call, in order, with the SDK input', async () => {
    // No AWS variables: nothing here may look for credentials.
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    try {
      const r = await run(['aws', 'plan', 'digits@2.0.0', '--aws-config', cfgPath, '--things', '8', '--active', 'digits@1.0.0', '--canary', '1', '--waves', '50%,100%', '--json']);
      expect(r.code).toBe(0);
      const calls = r.out.map((l) => JSON.parse(l) as { step: string; service: string; command: string; input: Record<string, unknown> });
      expect(calls.map((c) => c.command)).toEqual([
        'CreateThingGroup', 'AddThingToThingGroup', 'CreateDeployment',
        'CreateThingGroup', 'AddThingToThingGroup', 'AddThingToThingGroup', 'AddThingToThingGroup', 'CreateDeployment',
        'CreateThingGroup', 'AddThingToThingGroup', 'AddThingToThingGroup', 'AddThingToThingGroup', 'AddThingToThingGroup', 'CreateDeployment',
        'GetDeployment', 'DescribeJob', 'ListJobExecutionsForJob',
        'GetDeployment', 'DescribeJob', 'ListJobExecutionsForJob',
        'GetDeployment', 'DescribeJob', 'ListJobExecutionsForJob',
      ]);
      const dep = calls[2]?.input as { iotJobConfiguration: { jobExecutionsRolloutConfig: { maximumPerMinute: number; exponentialRate: { baseRatePerMinute: number } } } };
      expect(dep.iotJobConfiguration.jobExecutionsRolloutConfig).toMatchObject({ maximumPerMinute: 50, exponentialRate: { baseRatePerMinute: 5 } });
      expect(r.err.join('\n')).toContain('note: model locations are placeholders');
    } finally {
      Object.assign(process.env, saved);
    }
  });

  it('answers bad input with a code and the bad keys', async () => {
    const bad = join(tmp.dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ region: 'eu-west-1', greengrass: { component_version: '1.0.0', rollout: { increment_factor: 9 } }, s3: { bucket: 'b-1' } }));
    const r = await run(['aws', 'plan', 'digits@2.0.0', '--aws-config', bad, '--things', '2']);
    expect(r.code).not.toBe(0);
    expect(r.err.join('\n')).toMatch(/FLEET_AWS_CONFIG_INVALID.*greengrass\.rollout\.increment_factor/);
    const h = await run(['aws', '--help']);
    expect(h.code).toBe(0);
    expect(h.out.join('\n')).toContain('--abort-at');
  });
});
