/**
 * `edgeloop serve --backend aws --training FILE` wiring, in process (a served fleet's child
 * process cannot share aws-sdk-client-mock): the training file is validated, the trainer table
 * gets `sagemaker` from the AWS configuration, and a learning-loop run through `trainNow`
 * (what `edgeloop train --trainer sagemaker` asks the service for) drives the SageMaker trainer:
 * SageMaker under aws-sdk-client-mock, S3 a real s3rver, the registry, datasets and ONNX Runtime
 * evaluation real.
 */
import { CreateTrainingJobCommand, DescribeTrainingJobCommand, SageMakerClient } from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAwsConfig, type AwsFleetConfig } from '../../../fleet/adapters/aws/aws-config.js';
import { awsTrainers } from '../../../fleet/boot/aws.js';
import { parseTrainingConfig, trainingSetup } from '../../../fleet/boot/training-config.js';
import type { LearningLoop } from '../../../fleet/app/training/loop.js';
import { learningLoopFromContext } from '../../../fleet/boot/learning-loop.js';
import { CLASS_LABELS, fleetKeys, patternImage } from '../../helpers/packages.js';
import { openTestFleet, type TestFleet } from '../http/context.js';
import { containerRun } from './sagemaker-container.js';
import { startLocalS3, TEST_AWS, type LocalS3 } from './s3-server.js';

const ROLE = 'arn:aws:iam::123456789012:role/edgeloop-sagemaker';
const IMAGE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/edgeloop-train:3';

function awsCfg(bucket: string, withSagemaker = true): AwsFleetConfig {
  return parseAwsConfig({
    region: 'eu-west-1',
    greengrass: { component_version: '1.0.0' },
    s3: { bucket, prefix: 'fleet-a/' },
    ...(withSagemaker ? { sagemaker: { role_arn: ROLE, image: IMAGE, instance_type: 'ml.c5.xlarge', poll_s: 20 } } : {}),
  });
}

describe('serve --training with --backend aws: the sagemaker trainer in the learning loop', () => {
  let s3: LocalS3;
  let f: TestFleet;
  let loop: LearningLoop | null = null;
  const sm = new SageMakerClient({ ...TEST_AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
  const smMock = mockClient(sm);

  beforeAll(async () => {
    s3 = await startLocalS3('edgeloop-train');
  });
  afterAll(async () => {
    await s3.close();
  });
  beforeEach(async () => {
    smMock.reset();
    f = await openTestFleet();
  });
  afterEach(async () => {
    await loop?.stop();
    loop = null;
    await f.close();
  });

  it('the trainer table: local always, command when configured, sagemaker from the AWS configuration (none without its section)', () => {
    const file = parseTrainingConfig({ trainers: { command: { command: 'python3', args: ['train.py'] } }, models: [{ name: 'pets', labels: CLASS_LABELS, trainer: 'sagemaker' }] }, { extraTrainers: ['sagemaker'] });
    const table = trainingSetup(file, awsTrainers(awsCfg(s3.bucket), { sagemaker: sm, s3Client: s3.client })).trainers;
    expect(Object.fromEntries(Object.entries(table).map(([k, t]) => [k, t.name]))).toEqual({ local: 'local', command: 'command', sagemaker: 'sagemaker' });
    expect(awsTrainers(awsCfg(s3.bucket, false))).toEqual({});
    expect(trainingSetup(parseTrainingConfig({ models: [{ name: 'pets', labels: CLASS_LABELS }] })).trainers).toHaveProperty('local');
    expect(Object.keys(trainingSetup(parseTrainingConfig({ models: [{ name: 'pets', labels: CLASS_LABELS }] })).trainers)).toEqual(['local']);
  });

  it('a dry run keeps the sagemaker name valid but refuses to run it, sending nothing', async () => {
    const t = awsTrainers(awsCfg(s3.bucket), { dryRun: true, sagemaker: sm }).sagemaker;
    expect(t?.name).toBe('sagemaker');
    await expect(t?.train({} as never)).rejects.toMatchObject({ code: 'FLEET_USAGE', message: expect.stringContaining('--dry-run') });
    expect(smMock.calls()).toHaveLength(0);
  });

  it('trainNow with trainer sagemaker: export to the configured bucket/prefix, CreateTrainingJob with the configured role, image and instance type, the package registered with its lineage and evaluated', { timeout: 120_000 }, async () => {
    // The base set by reference to the fleet's own artifacts: 8 train, 4 clean holdout.
    const items = await Promise.all(Array.from({ length: 12 }, async (_, i) => ({ sha256: (await f.ctx.artifacts.put(await patternImage(i))).sha256, label: CLASS_LABELS[i % 4] as string })));
    const file = parseTrainingConfig(
      {
        tick_s: 3600,
        models: [
          {
            name: 'pets',
            labels: CLASS_LABELS,
            trainer: 'local',
            params: { epochs: 2 },
            seed: 5,
            base: [
              { source: 'artifacts', items: items.slice(0, 8), split: 'train' },
              { source: 'artifacts', items: items.slice(8), split: 'clean_holdout' },
            ],
            gate: { require_field_holdout: false, latency_slack_ms: 1 },
          },
        ],
      },
      { extraTrainers: ['sagemaker'] },
    );
    let now = Date.UTC(2026, 11, 1, 12);
    const setup = trainingSetup(file, awsTrainers(awsCfg(s3.bucket), { sagemaker: sm, s3Client: s3.client, clock: { now: () => now } }));
    // The serve wiring sleeps poll_s for real between polls, so the mocked job completes on the
    // first DescribeTrainingJob (polling itself is covered in sagemaker-trainer.test.ts).
    let job = '';
    let exported: Awaited<ReturnType<typeof containerRun>>['dataset'] | null = null;
    smMock.on(CreateTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
      job = input.TrainingJobName;
      now += 1000;
      return { TrainingJobArn: `arn:aws:sagemaker:eu-west-1:123456789012:training-job/${job}` };
    });
    smMock.on(DescribeTrainingJobCommand).callsFake(async () => {
      const run = await containerRun(s3, job, { prefix: 'fleet-a/', version: '1.0.0' });
      exported = run.dataset;
      return { TrainingJobName: job, TrainingJobStatus: 'Completed', SecondaryStatus: 'Completed', ModelArtifacts: { S3ModelArtifacts: run.uri }, FinalMetricDataList: [{ MetricName: 'train:loss', Value: 0.4, Timestamp: new Date() }] };
    });
    loop = learningLoopFromContext(f.ctx, { ...setup, base: setup.base(f.ctx), workDir: `${f.dir}/training`, signKeyPem: fleetKeys().privateKeyPem });
    const phases: string[] = [];
    const run = await loop.trainNow({ actor: 'otto', trainer: 'sagemaker', note: 'on SageMaker', onProgress: (p) => phases.push(`${p.phase}: ${p.message}`) });

    expect(run.error).toBeNull();
    expect(run.status).toBe('accepted');
    expect(run.trainer).toBe('sagemaker');
    const input = smMock.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input).toMatchObject({
      RoleArn: ROLE,
      AlgorithmSpecification: { TrainingImage: IMAGE, TrainingInputMode: 'File' },
      ResourceConfig: { InstanceType: 'ml.c5.xlarge', InstanceCount: 1 },
      InputDataConfig: [{ ChannelName: 'train', DataSource: { S3DataSource: { S3Uri: `s3://edgeloop-train/fleet-a/training/${job}/input/train/` } } }],
      OutputDataConfig: { S3OutputPath: `s3://edgeloop-train/fleet-a/training/${job}/output/` },
      HyperParameters: { edgeloop_model_name: 'pets', edgeloop_model_version: '1.0.0', edgeloop_seed: '5', epochs: '2', edgeloop_dataset_version: run.dataset_version },
    });
    // The container saw the 8 base train examples (the clean holdout never reaches a trainer).
    expect(exported!.examples.map((e) => e.id).sort()).toEqual(items.slice(0, 8).map((i) => `artifact-${i.sha256}`).sort());
    const v = f.ctx.registry.get('pets', '1.0.0');
    expect(v.status).toBe('registered');
    const manifest = JSON.parse((await f.ctx.registry.manifestBytes('pets', '1.0.0')).toString()) as { lineage: Record<string, unknown> };
    expect(manifest.lineage).toMatchObject({ trainer: 'sagemaker', training_run: run.id, dataset_version: run.dataset_version });
    expect(run.params).toMatchObject({ training_job: job, image: IMAGE, instance_type: 'ml.c5.xlarge' });
    expect(run.metrics).toMatchObject({ 'train:loss': 0.4, clean_accuracy: expect.any(Number) });
    expect(phases).toEqual(expect.arrayContaining([expect.stringMatching(/^train: SageMaker training job .* created$/), expect.stringMatching(/^evaluate: /), 'done: pets@1.0.0 accepted']));
  });
});
