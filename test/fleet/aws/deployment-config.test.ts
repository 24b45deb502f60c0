import type { CreateDeploymentCommandInput } from '@aws-sdk/client-greengrassv2';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAwsConfig } from '../../../fleet/adapters/aws/aws-config.js';
import { deploymentLimitProblems, slotKey, stageDeploymentRequest, stageJobConfiguration, thingGroupName } from '../../../fleet/adapters/aws/deployment-config.js';
import { gates as gatesSchema } from '../../../fleet/core/rollouts/plan-schema.js';
import { awsConfig, desired, groupArn, SHA_B } from './fixtures.js';

const GATES = gatesSchema.parse({});

describe('stage deployment request (pure: plan -> CreateDeployment input)', () => {
  it('carries the desired model as reset + merge, the policies and the IoT Jobs configuration', () => {
    const cfg = awsConfig({ greengrass: { component_version: '1.2.0', component_update_timeout_s: 90, config_validation_timeout_s: 20, in_progress_timeout_minutes: 120 } });
    const req: CreateDeploymentCommandInput = stageDeploymentRequest(cfg.greengrass, {
      rolloutId: 'ro_1',
      label: 'canary',
      targetArn: groupArn('edgeloop-ro_1-canary'),
      desired: desired(42),
      gates: { ...GATES, max_failure_ratio: 0.2, min_devices_reporting: 3 },
      stageSize: 10,
    });
    expect(req).toEqual({
      targetArn: groupArn('edgeloop-ro_1-canary'),
      deploymentName: 'edgeloop ro_1 canary r42',
      components: {
        'com.edgeloop.Agent': {
          componentVersion: '1.2.0',
          configurationUpdate: { reset: ['/desired'], merge: expect.any(String) },
        },
      },
      deploymentPolicies: {
        failureHandlingPolicy: 'ROLLBACK',
        componentUpdatePolicy: { action: 'NOTIFY_COMPONENTS', timeoutInSeconds: 90 },
        configurationValidationPolicy: { timeoutInSeconds: 20 },
      },
      iotJobConfiguration: {
        jobExecutionsRolloutConfig: { exponentialRate: { baseRatePerMinute: 10, incrementFactor: 2, rateIncreaseCriteria: { numberOfNotifiedThings: 10 } }, maximumPerMinute: 100 },
        abortConfig: { criteriaList: [{ failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 20, minNumberOfExecutedThings: 3 }] },
        timeoutConfig: { inProgressTimeoutInMinutes: 120 },
      },
      tags: { 'edgeloop:rollout': 'ro_1', 'edgeloop:group': 'edgeloop-ro_1-canary' },
      clientToken: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    // The merge is what the agent validates: the shared contract schema.
    expect(JSON.parse(req.components?.['com.edgeloop.Agent']?.configurationUpdate?.merge ?? '')).toEqual({ desired: desired(42) });
  });

  it('falls back to the configured abort threshold when the gates set no failure ratio, and never asks for more executions than the group has', () => {
    const cfg = awsConfig({ greengrass: { component_version: '1.2.0', abort: { threshold_percentage: 12.5, min_executed_things: 20 } } });
    const job = stageJobConfiguration(cfg.greengrass, GATES, 4);
    expect(job.abortConfig?.criteriaList).toEqual([{ failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 12.5, minNumberOfExecutedThings: 4 }]);
    // Ratios become percentages with at most two decimals.
    const j2 = stageJobConfiguration(cfg.greengrass, { ...GATES, max_failure_ratio: 1 / 3 }, 100);
    expect(j2.abortConfig?.criteriaList?.[0]?.thresholdPercentage).toBe(33.33);
    expect(stageJobConfiguration(cfg.greengrass, { ...GATES, max_failure_ratio: 0 }, 100).abortConfig?.criteriaList?.[0]?.thresholdPercentage).toBe(0.01);
  });

  it('the same group and revision give the same clientToken (a retried call is not a second deployment)', () => {
    const cfg = awsConfig();
    const spec = { rolloutId: 'ro_1', label: 'wave-1', targetArn: groupArn('edgeloop-ro_1-wave-1'), desired: desired(5), gates: GATES, stageSize: 3 };
    expect(stageDeploymentRequest(cfg.greengrass, spec).clientToken).toBe(stageDeploymentRequest(cfg.greengrass, spec).clientToken);
    expect(stageDeploymentRequest(cfg.greengrass, { ...spec, desired: desired(6) }).clientToken).not.toBe(stageDeploymentRequest(cfg.greengrass, spec).clientToken);
  });

  it('refuses a desired model that breaks the shared contract before building anything', () => {
    const cfg = awsConfig();
    const bad = desired(1, { active: { model: { name: 'digits', version: '2.0.0' }, base_url: 'not a url', manifest_sha256: 'XYZ' } });
    expect(() => stageDeploymentRequest(cfg.greengrass, { rolloutId: 'ro_1', label: 'canary', targetArn: groupArn('g'), desired: bad, gates: GATES, stageSize: 1 })).toThrow();
  });

  it('every request built from any valid configuration and gates is within the documented limits (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          base: fc.integer({ min: 1, max: 1000 }),
          max: fc.integer({ min: 1, max: 1000 }),
          factor: fc.double({ min: 1.1, max: 5, noNaN: true }),
          notified: fc.integer({ min: 1, max: 10_000 }),
          threshold: fc.double({ min: 0.01, max: 100, noNaN: true }),
          minExec: fc.integer({ min: 1, max: 10_000 }),
          timeout: fc.integer({ min: 1, max: 10_080 }),
          ratio: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: null }),
          minReporting: fc.integer({ min: 0, max: 500 }),
          size: fc.integer({ min: 0, max: 100_000 }),
        }),
        (x) => {
          const max = Math.max(x.base, x.max);
          const cfg = parseAwsConfig({
            region: 'eu-west-1',
            greengrass: {
              component_version: '1.0.0',
              rollout: { base_rate_per_minute: x.base, maximum_per_minute: max, increment_factor: x.factor, notified_things_per_increase: x.notified },
              abort: { threshold_percentage: x.threshold, min_executed_things: x.minExec },
              in_progress_timeout_minutes: x.timeout,
            },
            s3: { bucket: 'b-1' },
          });
          const req = stageDeploymentRequest(cfg.greengrass, {
            rolloutId: 'ro_x',
            label: 'wave-3',
            targetArn: groupArn('edgeloop-ro_x-wave-3'),
            desired: desired(1),
            gates: { ...GATES, max_failure_ratio: x.ratio, min_devices_reporting: x.minReporting },
            stageSize: x.size,
          });
          expect(deploymentLimitProblems(req)).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('names every broken limit of a request (so nothing out of range is ever sent)', () => {
    const cfg = awsConfig();
    const good = stageDeploymentRequest(cfg.greengrass, { rolloutId: 'ro_1', label: 'canary', targetArn: groupArn('edgeloop-ro_1-canary'), desired: desired(1), gates: GATES, stageSize: 5 });
    const job = good.iotJobConfiguration!;
    const bad = {
      ...good,
      targetArn: 'arn:aws:s3:::bucket',
      clientToken: 'has spaces',
      iotJobConfiguration: {
        jobExecutionsRolloutConfig: { maximumPerMinute: 1001, exponentialRate: { baseRatePerMinute: 0, incrementFactor: 5.5, rateIncreaseCriteria: {} } },
        abortConfig: { criteriaList: [{ failureType: 'ALL' as const, action: 'CANCEL' as const, thresholdPercentage: 100.5, minNumberOfExecutedThings: 0 }] },
        timeoutConfig: { inProgressTimeoutInMinutes: 10_081 },
      },
    };
    expect(job).toBeDefined();
    const problems = deploymentLimitProblems(bad);
    for (const want of ['targetArn', 'clientToken', 'maximumPerMinute', 'baseRatePerMinute', 'incrementFactor', 'rateIncreaseCriteria', 'thresholdPercentage', 'minNumberOfExecutedThings', 'inProgressTimeoutInMinutes']) {
      expect(problems.join('\n')).toContain(want);
    }
    expect(deploymentLimitProblems({ ...good, iotJobConfiguration: { ...job, abortConfig: { criteriaList: [{ failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 10.999, minNumberOfExecutedThings: 1 }] } } })).toEqual([
      'abortConfig.criteriaList.0.thresholdPercentage: 0..100 with at most two decimals',
    ]);
    expect(deploymentLimitProblems({ ...good, iotJobConfiguration: { ...job, timeoutConfig: { inProgressTimeoutInMinutes: 0 } } })).toHaveLength(1);
  });

  it('refuses configurations outside the documented limits, naming every bad key', () => {
    let err: unknown;
    try {
      parseAwsConfig({
        region: 'mars',
        greengrass: { component_version: 'x', rollout: { base_rate_per_minute: 0, increment_factor: 1.05, maximum_per_minute: 1001 }, abort: { threshold_percentage: 101, min_executed_things: 0 }, in_progress_timeout_minutes: 10_081 },
        s3: { bucket: 'Bad_Bucket' },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'FLEET_AWS_CONFIG_INVALID' });
    const msg = (err as Error).message;
    for (const key of ['region', 'greengrass.component_version', 'greengrass.rollout.base_rate_per_minute', 'greengrass.rollout.increment_factor', 'greengrass.rollout.maximum_per_minute', 'greengrass.abort.threshold_percentage', 'greengrass.abort.min_executed_things', 'greengrass.in_progress_timeout_minutes', 's3.bucket']) {
      expect(msg).toContain(key);
    }
    expect(Object.isFrozen(awsConfig().greengrass.rollout)).toBe(true);
  });

  it('thing group names stay within IoT rules, unique when cut', () => {
    expect(thingGroupName('edgeloop', 'ro_01ABC', 'wave 2')).toBe('edgeloop-ro_01ABC-wave-2');
    const long1 = thingGroupName('edgeloop', 'r'.repeat(120), 'revert-aaaa');
    const long2 = thingGroupName('edgeloop', 'r'.repeat(120), 'revert-bbbb');
    expect(long1.length).toBeLessThanOrEqual(128);
    expect(long1).not.toBe(long2);
    expect(long1).toMatch(/^[a-zA-Z0-9:_-]+$/);
  });

  it('slot keys change with the model, the manifest and the shadow sample rate', () => {
    const d = desired(1);
    const k = slotKey(d);
    expect(slotKey({ ...d })).toBe(k);
    expect(slotKey({ ...d, active: { ...d.active!, manifest_sha256: SHA_B } })).not.toBe(k);
    const sh = { ...d, shadow: { model: { name: 'digits', version: '3.0.0' }, base_url: 'https://x.test/', manifest_sha256: SHA_B, sample_rate: 0.1 } };
    expect(slotKey(sh)).not.toBe(slotKey({ ...sh, shadow: { ...sh.shadow, sample_rate: 0.2 } }));
  });
});
