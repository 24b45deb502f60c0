/**
 * Configuration of the fleet's AWS mode (`edgeloop serve --backend aws --aws-config FILE`):
 * validated once at start, every bad key named in one error, then frozen. Limits quoted here
 * are the documented ones for Greengrass v2 deployments over IoT Jobs (see the README's
 * "Fleet on AWS" section and /shared/FACTS.md); a value outside them is refused here, before
 * any AWS call.
 */
import { TargetDevice } from '@aws-sdk/client-sagemaker';
import { z } from 'zod';
import { semver } from '../../shared/schemas/common.js';
import { parseConfig, type ConfigKind } from '../../shared/config.js';
import { loadConfigFile } from '../config-file.js';
import { FleetError } from '../errors.js';

/** Documented limits (Greengrass CreateDeployment / IoT Jobs). */
export const AWS_LIMITS = {
  ratePerMinute: { min: 1, max: 1000 },
  incrementFactor: { min: 1.1, max: 5 },
  /** numberOfNotifiedThings / numberOfSucceededThings of rateIncreaseCriteria. */
  increaseCriteria: { min: 1 },
  thresholdPercentage: { min: 0, max: 100 },
  minNumberOfExecutedThings: { min: 1 },
  /** timeoutConfig.inProgressTimeoutInMinutes: 1 minute to 7 days. */
  inProgressTimeoutMinutes: { min: 1, max: 7 * 24 * 60 },
  thingGroupName: { max: 128, pattern: /^[a-zA-Z0-9:_-]+$/ },
  deploymentName: { max: 256 },
  clientToken: { max: 64, pattern: /^[a-zA-Z0-9-]+$/ },
} as const;

const rate = z.number().int().min(AWS_LIMITS.ratePerMinute.min).max(AWS_LIMITS.ratePerMinute.max);

export const greengrassConfig = z
  .object({
    /** The agent component (see greengrass-recipes/README.md). */
    component_name: z.string().min(1).default('com.edgeloop.Agent'),
    /** The agent component version every rollout deployment names (must match the fleet's base deployment). */
    component_version: semver,
    /** Thing groups are `<prefix>-<rollout id>-<stage>`; the prefix scopes the IAM policy. */
    thing_group_prefix: z.string().regex(/^[a-zA-Z0-9_-]+$/).max(40).default('edgeloop'),
    /** componentUpdatePolicy.timeoutInSeconds: how long components may defer an update (agent finishes inference). */
    component_update_timeout_s: z.number().int().min(1).max(3600).default(60),
    /** configurationValidationPolicy.timeoutInSeconds: how long the agent may take to validate the new desired model. */
    config_validation_timeout_s: z.number().int().min(1).max(3600).default(30),
    /** IoT Jobs exponential rollout per stage deployment. */
    rollout: z
      .object({
        base_rate_per_minute: rate.default(10),
        increment_factor: z.number().min(AWS_LIMITS.incrementFactor.min).max(AWS_LIMITS.incrementFactor.max).default(2),
        /** Raise the rate after this many more devices were notified. */
        notified_things_per_increase: z.number().int().min(1).default(10),
        maximum_per_minute: rate.default(100),
      })
      .prefault({})
      .refine((r) => r.base_rate_per_minute <= r.maximum_per_minute, { message: 'base_rate_per_minute must not exceed maximum_per_minute', path: ['base_rate_per_minute'] }),
    /**
     * IoT Jobs abort criterion (counts failures only; the fleet's quality gates act on top).
     * Used when the stage's gates set no `max_failure_ratio`.
     */
    abort: z
      .object({
        threshold_percentage: z.number().gt(0).max(AWS_LIMITS.thresholdPercentage.max).default(10),
        min_executed_things: z.number().int().min(AWS_LIMITS.minNumberOfExecutedThings.min).default(1),
      })
      .prefault({}),
    /** timeoutConfig.inProgressTimeoutInMinutes for every device's job execution. */
    in_progress_timeout_minutes: z.number().int().min(AWS_LIMITS.inProgressTimeoutMinutes.min).max(AWS_LIMITS.inProgressTimeoutMinutes.max).default(60),
    /** How often the backend polls deployment and job status (seconds). */
    status_poll_s: z.number().int().min(5).default(60),
  })
  .strict();
export type GreengrassConfig = z.output<typeof greengrassConfig>;

export const s3Config = z
  .object({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)'),
    prefix: z.string().max(200).regex(/^$|\/$/, 'empty or ending in /').default('edgeloop/'),
    /** Presigned GET lifetime for devices; SigV4 allows at most 7 days. */
    presign_expires_s: z.number().int().min(60).max(7 * 24 * 3600).default(6 * 3600),
    part_size_mb: z.number().int().min(5).max(5120).default(8),
    /** Only for S3-compatible servers (tests, MinIO): an explicit endpoint, path-style. */
    endpoint: z.string().url().optional(),
  })
  .strict();
export type S3Config = z.output<typeof s3Config>;

export const sagemakerConfig = z
  .object({
    /** Execution role SageMaker assumes (reads the dataset prefix, writes the output prefix). */
    role_arn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'an IAM role ARN'),
    /** The user's training image in ECR. */
    image: z.string().min(1),
    instance_type: z.string().regex(/^ml\.[a-z0-9]+\.[a-z0-9]+$/).default('ml.m5.large'),
    instance_count: z.number().int().min(1).default(1),
    volume_gb: z.number().int().min(1).default(30),
    max_runtime_s: z.number().int().min(1).max(28 * 24 * 3600).default(24 * 3600),
    poll_s: z.number().int().min(1).default(30),
    /**
     * Optional SageMaker Neo compilation. Neo's edge output runs on the DLR runtime, not ONNX
     * Runtime: the package records it as an extra artifact, the ONNX model stays the one the
     * agent runs (see sagemaker-trainer.ts).
     */
    neo: z
      .object({
        /** A Neo edge target such as `jetson_nano`, `jetson_xavier`, `rasp4b` (the SDK's TargetDevice values). */
        target_device: z.enum(Object.values(TargetDevice) as [TargetDevice, ...TargetDevice[]]).optional(),
        target_platform: z.object({ os: z.enum(['LINUX', 'ANDROID']), arch: z.enum(['X86_64', 'X86', 'ARM64', 'ARM_EABI', 'ARM_EABIHF']), accelerator: z.enum(['INTEL_GRAPHICS', 'MALI', 'NVIDIA']).optional() }).optional(),
        framework: z.enum(['ONNX', 'PYTORCH', 'TENSORFLOW', 'TFLITE', 'KERAS', 'MXNET', 'XGBOOST', 'DARKNET']).default('ONNX'),
        max_runtime_s: z.number().int().min(1).default(900),
      })
      .strict()
      .refine((n) => (n.target_device === undefined) !== (n.target_platform === undefined), { message: 'set exactly one of target_device and target_platform' })
      .optional(),
  })
  .strict();
export type SagemakerConfig = z.output<typeof sagemakerConfig>;

export const awsFleetConfig = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'an AWS region such as eu-west-1'),
    /** Only needed for ARNs in `--dry-run` (a real run learns ARNs from the answers). */
    account_id: z.string().regex(/^\d{12}$/).optional(),
    greengrass: greengrassConfig,
    s3: s3Config,
    sagemaker: sagemakerConfig.optional(),
  })
  .strict();
export type AwsFleetConfig = z.output<typeof awsFleetConfig>;
export type AwsFleetConfigInput = z.input<typeof awsFleetConfig>;

const AWS_CONFIG: ConfigKind = { what: 'AWS configuration', error: (m, o) => new FleetError('AWS_CONFIG_INVALID', m, o) };

/** Validate a configuration object: every bad key in one `FLEET_AWS_CONFIG_INVALID` error. */
export function parseAwsConfig(data: unknown): AwsFleetConfig {
  return parseConfig(awsFleetConfig, data, AWS_CONFIG);
}

/** Read and validate the JSON configuration file. */
export async function loadAwsConfig(path: string): Promise<AwsFleetConfig> {
  return loadConfigFile(awsFleetConfig, AWS_CONFIG, path);
}
