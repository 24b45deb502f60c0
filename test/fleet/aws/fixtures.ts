import type { ComponentDesired } from '../../../shared/schemas/greengrass.js';
import { parseAwsConfig, type AwsFleetConfig, type AwsFleetConfigInput } from '../../../fleet/adapters/aws/aws-config.js';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const SHA_A = 'a'.repeat(64);
export const SHA_B = 'b'.repeat(64);

export function awsConfig(over: Partial<AwsFleetConfigInput> = {}): AwsFleetConfig {
  return parseAwsConfig({
    region: REGION,
    account_id: ACCOUNT,
    greengrass: { component_version: '1.2.0' },
    s3: { bucket: 'edgeloop-test' },
    ...over,
  });
}

export function desired(revision = 7, over: Partial<ComponentDesired> = {}): ComponentDesired {
  return {
    v: 1,
    revision,
    rollout_id: 'ro_test',
    active: { model: { name: 'digits', version: '2.0.0' }, base_url: 'https://models.example.test/digits/2.0.0/', manifest_sha256: SHA_A },
    ...over,
  };
}

export const groupArn = (name: string): string => `arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/${name}`;
