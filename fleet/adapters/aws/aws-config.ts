/**
 * Configuration of the fleet's AWS mode (`edgeloop serve --backend aws --aws-config FILE`):
 * validated once at start, every bad key named in one error, then frozen. Limits quoted here
 * are the documented ones for Greengrass v2 deployments over IoT Jobs (see the README's
 * "Fleet on AWS" section and /shared/FACTS.md); a value outside them is refused here, before
 * any AWS call.
 */
import { TargetDevice } from '@aws-sdk/client-sagemaker';
import { z } from 'zod';
import { semver } from '../../../shared/schemas/common.js';
import { parseConfig, type ConfigKind } from '../../../shared/config.js';
import { loadConfigFile } from '../fs/config-file.js';
import { FleetError } from '../../errors.js';

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
    component_name: z.string().min(1).default('com.edgeloop.Agent').describe('The agent component (see greengrass-recipes/README.md).'),
    component_version: semver.describe("The agent component version every rollout deployment names (the fleet's base deployment's)."),
    thing_group_prefix: z
      .string()
      .regex(/^[a-zA-Z0-9_-]+$/)
      .max(40)
      .default('edgeloop')
      .describe('Thing groups are named `<prefix>-<rollout id>-<stage>`; scope the IAM policy with the prefix.'),
    component_update_timeout_s: z.number().int().min(1).max(3600).default(60).describe('`componentUpdatePolicy.timeoutInSeconds`: how long components may defer an update (the agent finishes inference).'),
    config_validation_timeout_s: z.number().int().min(1).max(3600).default(30).describe('`configurationValidationPolicy.timeoutInSeconds`: how long the agent may take to validate the new desired model.'),
    rollout: z
      .object({
        base_rate_per_minute: rate.default(10).describe('Devices notified per minute at first; at most `maximum_per_minute`.'),
        increment_factor: z.number().min(AWS_LIMITS.incrementFactor.min).max(AWS_LIMITS.incrementFactor.max).default(2).describe('Factor the rate grows by.'),
        notified_things_per_increase: z.number().int().min(1).default(10).describe('Raise the rate after this many more devices were notified.'),
        maximum_per_minute: rate.default(100).describe('Highest rate (devices per minute).'),
      })
      .prefault({})
      .refine((r) => r.base_rate_per_minute <= r.maximum_per_minute, { message: 'base_rate_per_minute must not exceed maximum_per_minute', path: ['base_rate_per_minute'] })
      .describe('IoT Jobs exponential rollout of each stage deployment.'),
    abort: z
      .object({
        threshold_percentage: z.number().gt(0).max(AWS_LIMITS.thresholdPercentage.max).default(10).describe('Abort when this percentage of executions failed.'),
        min_executed_things: z.number().int().min(AWS_LIMITS.minNumberOfExecutedThings.min).default(1).describe('...after at least this many devices ran the job.'),
      })
      .prefault({})
      .describe("IoT Jobs abort criterion (counts failures only; the fleet's quality gates act on top). Used when the stage's gates set no `max_failure_ratio`."),
    in_progress_timeout_minutes: z
      .number()
      .int()
      .min(AWS_LIMITS.inProgressTimeoutMinutes.min)
      .max(AWS_LIMITS.inProgressTimeoutMinutes.max)
      .default(60)
      .describe("`timeoutConfig.inProgressTimeoutInMinutes` of every device's job execution."),
    status_poll_s: z.number().int().min(5).default(60).describe('How often the backend sweeps deployment and job status (seconds).'),
  })
  .strict();
export type GreengrassConfig = z.output<typeof greengrassConfig>;

export const s3Config = z
  .object({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)').describe('The bucket of artifacts and samples, content-addressed keys `<prefix>sha256/<aa>/<sha256>`.'),
    prefix: z.string().max(200).regex(/^$|\/$/, 'empty or ending in /').default('edgeloop/').describe('Key prefix: empty or ending in `/`.'),
    presign_expires_s: z
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .default(6 * 3600)
      .describe('Lifetime of the presigned GETs devices get (seconds; SigV4 allows at most 7 days); a device offline longer gets fresh URLs with the next deployment.'),
    part_size_mb: z.number().int().min(5).max(5120).default(8).describe('Multipart part size (MiB); bodies above one part go multipart.'),
    endpoint: z.string().url().optional().describe('Only for S3-compatible servers (tests, MinIO): an explicit endpoint, path-style.'),
  })
  .strict();
export type S3Config = z.output<typeof s3Config>;

export const sagemakerConfig = z
  .object({
    role_arn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'an IAM role ARN').describe('Execution role SageMaker assumes (reads the dataset prefix, writes the output prefix).'),
    image: z.string().min(1).describe("The user's training image in ECR."),
    instance_type: z.string().regex(/^ml\.[a-z0-9]+\.[a-z0-9]+$/).default('ml.m5.large').describe('Training instance type.'),
    instance_count: z.number().int().min(1).default(1).describe('Training instances.'),
    volume_gb: z.number().int().min(1).default(30).describe('Storage volume per instance (GB).'),
    max_runtime_s: z
      .number()
      .int()
      .min(1)
      .max(28 * 24 * 3600)
      .default(24 * 3600)
      .describe('`MaxRuntimeInSeconds` of a training job.'),
    poll_s: z.number().int().min(1).default(30).describe('How often the trainer asks `DescribeTrainingJob` (seconds).'),
    neo: z
      .object({
        target_device: z
          .enum(Object.values(TargetDevice) as [TargetDevice, ...TargetDevice[]])
          .optional()
          .describe("A Neo edge target such as `jetson_nano`, `jetson_xavier`, `rasp4b` (the SDK's TargetDevice values)."),
        target_platform: z
          .object({
            os: z.enum(['LINUX', 'ANDROID']).describe('Target operating system.'),
            arch: z.enum(['X86_64', 'X86', 'ARM64', 'ARM_EABI', 'ARM_EABIHF']).describe('Target architecture.'),
            accelerator: z.enum(['INTEL_GRAPHICS', 'MALI', 'NVIDIA']).optional().describe('Target accelerator.'),
          })
          .optional()
          .describe('A target platform instead of a device.'),
        framework: z.enum(['ONNX', 'PYTORCH', 'TENSORFLOW', 'TFLITE', 'KERAS', 'MXNET', 'XGBOOST', 'DARKNET']).default('ONNX').describe('Framework of the model Neo compiles.'),
        max_runtime_s: z.number().int().min(1).default(900).describe('Time limit of a compilation job (seconds).'),
      })
      .strict()
      .refine((n) => (n.target_device === undefined) !== (n.target_platform === undefined), { message: 'set exactly one of target_device and target_platform' })
      .optional()
      .describe(
        'Optional SageMaker Neo compilation, for exactly one of `target_device` and `target_platform`. Neo\'s edge output runs on the DLR runtime, not ONNX Runtime: the package records it as an extra artifact, the ONNX model stays the one the agent runs.',
      ),
  })
  .strict();
export type SagemakerConfig = z.output<typeof sagemakerConfig>;

export const awsFleetConfig = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'an AWS region such as eu-west-1').describe('AWS region, e.g. `eu-west-1`.'),
    account_id: z
      .string()
      .regex(/^\d{12}$/)
      .optional()
      .describe('Only needed for ARNs in `--dry-run` (a real run learns ARNs from the answers).'),
    greengrass: greengrassConfig.describe('Rollouts as Greengrass v2 deployments of the agent component to one thing group per stage.'),
    s3: s3Config.describe('Artifacts and samples in S3.'),
    sagemaker: sagemakerConfig.optional().describe('The `sagemaker` trainer (a training job per run); absent: no `sagemaker` trainer.'),
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
