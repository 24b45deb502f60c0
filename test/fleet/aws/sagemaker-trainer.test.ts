import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  CreateCompilationJobCommand,
  CreateTrainingJobCommand,
  DescribeCompilationJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
  StopTrainingJobCommand,
  type DescribeTrainingJobCommandOutput,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAwsConfig, type AwsFleetConfig } from '../../../fleet/adapters/aws/aws-config.js';
import { hyperParameters, sagemakerTrainer, trainingJobName } from '../../../fleet/adapters/trainers/sagemaker-trainer.js';
import type { TrainProgress, TrainRequest } from '../../../fleet/app/training/trainer.js';
import { CLASS_LABELS, patternImage, tempDir } from '../../helpers/packages.js';
import { trainerContract } from '../training/trainer-contract.js';
import { containerRun as playContainer } from './sagemaker-container.js';
import { startLocalS3, TEST_AWS, type LocalS3 } from './s3-server.js';

const ROLE = 'arn:aws:iam::123456789012:role/edgeloop-sagemaker';
const IMAGE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/edgeloop-train:1';

function config(bucket: string, neo = false): AwsFleetConfig & { sagemaker: NonNullable<AwsFleetConfig['sagemaker']> } {
  const c = parseAwsConfig({
    region: 'eu-west-1',
    greengrass: { component_version: '1.0.0' },
    s3: { bucket, prefix: 'ml/' },
    sagemaker: { role_arn: ROLE, image: IMAGE, instance_type: 'ml.g4dn.xlarge', poll_s: 30, ...(neo ? { neo: { target_device: 'jetson_nano' } } : {}) },
  });
  if (!c.sagemaker) throw new Error('sagemaker section missing');
  return { ...c, sagemaker: c.sagemaker };
}

describe('SageMaker trainer (SageMaker under aws-sdk-client-mock, S3 against s3rver)', () => {
  let s3: LocalS3;
  const sm = new SageMakerClient({ ...TEST_AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
  const smMock = mockClient(sm);
  let out: ReturnType<typeof tempDir>;
  let sleeps: number[];
  let now: number;
  let progress: TrainProgress[];
  let train: TrainRequest['train'];

  beforeAll(async () => {
    s3 = await startLocalS3('edgeloop-ml');
    train = await Promise.all(Array.from({ length: 6 }, async (_, i) => ({ id: `s-${i}`, label: CLASS_LABELS[i % 4] ?? 'cat', bytes: await patternImage(i) })));
  });
  afterAll(async () => {
    await s3.close();
  });
  beforeEach(() => {
    smMock.reset();
    out = tempDir('edgeloop-sm-out-');
    sleeps = [];
    now = Date.UTC(2026, 11, 1, 12);
    progress = [];
  });

  const trainer = (neo = false) =>
    sagemakerTrainer({
      cfg: config(s3.bucket, neo),
      sagemaker: sm,
      s3: s3.client,
      clock: { now: () => now },
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
      codeVersion: 'test',
    });

  const request = (over: Partial<TrainRequest> = {}): TrainRequest => ({
    model: { name: 'pets', version: '2.0.0' },
    datasetVersion: 'd'.repeat(64),
    train,
    labels: CLASS_LABELS,
    parent: null,
    params: { epochs: 3, lr: 0.01, augment: { rotate: 10 } },
    seed: 7,
    outputDir: out.dir,
    onProgress: (p) => progress.push(p),
    ...over,
  });

  /** The container's part (sagemaker-container.ts), with the 6 exported examples checked. */
  async function containerRun(jobName: string, o: { broken?: boolean } = {}): Promise<string> {
    const r = await playContainer(s3, jobName, o);
    expect(r.dataset.examples).toHaveLength(6);
    return r.uri;
  }

  const describeSequence = (jobName: () => string, final: () => Promise<Partial<DescribeTrainingJobCommandOutput>>) => {
    let n = 0;
    smMock.on(DescribeTrainingJobCommand).callsFake(async () => {
      n++;
      if (n === 1) return { TrainingJobName: jobName(), TrainingJobStatus: 'InProgress', SecondaryStatus: 'Starting' };
      if (n === 2) return { TrainingJobName: jobName(), TrainingJobStatus: 'InProgress', SecondaryStatus: 'Training', SecondaryStatusTransitions: [{ Status: 'Training', StartTime: new Date(), StatusMessage: 'Training image download completed. Training in progress.' }] };
      return { TrainingJobName: jobName(), ...(await final()) };
    });
  };

  it('exports, creates the job with the user image and hyperparameters, follows it, fetches and validates the package', async () => {
    let job = '';
    smMock.on(CreateTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
      job = input.TrainingJobName;
      return { TrainingJobArn: `arn:aws:sagemaker:eu-west-1:123456789012:training-job/${job}` };
    });
    describeSequence(
      () => job,
      async () => ({ TrainingJobStatus: 'Completed', SecondaryStatus: 'Completed', ModelArtifacts: { S3ModelArtifacts: await containerRun(job) }, FinalMetricDataList: [{ MetricName: 'train:accuracy', Value: 0.93, Timestamp: new Date() }] }),
    );
    const res = await trainer().train(request());
    const input = smMock.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input).toEqual({
      TrainingJobName: job,
      AlgorithmSpecification: { TrainingImage: IMAGE, TrainingInputMode: 'File' },
      RoleArn: ROLE,
      HyperParameters: { edgeloop_model_name: 'pets', edgeloop_model_version: '2.0.0', edgeloop_dataset_version: 'd'.repeat(64), edgeloop_seed: '7', epochs: '3', lr: '0.01', augment: '{"rotate":10}' },
      InputDataConfig: [{ ChannelName: 'train', DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `s3://edgeloop-ml/ml/training/${job}/input/train/`, S3DataDistributionType: 'FullyReplicated' } } }],
      OutputDataConfig: { S3OutputPath: `s3://edgeloop-ml/ml/training/${job}/output/` },
      ResourceConfig: { InstanceType: 'ml.g4dn.xlarge', InstanceCount: 1, VolumeSizeInGB: 30 },
      StoppingCondition: { MaxRuntimeInSeconds: 86400 },
      Tags: [
        { Key: 'edgeloop:model', Value: 'pets@2.0.0' },
        { Key: 'edgeloop:dataset', Value: 'd'.repeat(64) },
      ],
    });
    expect(job).toMatch(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/);
    expect(sleeps).toEqual([30_000, 30_000]);
    expect(progress.map((p) => p.message)).toEqual([
      expect.stringMatching(/^exported 6 examples/),
      `SageMaker training job ${job} created`,
      `${job}: InProgress/Starting`,
      `${job}: InProgress/Training (Training image download completed. Training in progress.)`,
      `${job}: Completed/Completed`,
      expect.stringMatching(/^fetched s3:\/\/edgeloop-ml\/.*model\.tar\.gz/),
      `${job} done: pets@2.0.0`,
    ]);
    expect(res.metrics).toEqual({ 'train:accuracy': 0.93 });
    expect(res.run).toMatchObject({ trainer: 'sagemaker', seed: 7, params: { training_job: job, image: IMAGE } });
    expect(existsSync(join(out.dir, 'manifest.json'))).toBe(true);
    expect(res.durationMs).toBe(60_000);
  });

  it('a job that fails ends the run with FLEET_TRAINING_FAILED and SageMaker reason', async () => {
    smMock.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn' });
    describeSequence(() => 'x', async () => ({ TrainingJobStatus: 'Failed', SecondaryStatus: 'Failed', FailureReason: 'AlgorithmError: CUDA out of memory' }));
    await expect(trainer().train(request())).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: expect.stringContaining('CUDA out of memory') });
  });

  it('a job stopped outside the fleet (or past its max runtime) fails; one stopped by the abort signal is aborted, after StopTrainingJob', async () => {
    smMock.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn' });
    describeSequence(() => 'x', async () => ({ TrainingJobStatus: 'Stopped', SecondaryStatus: 'MaxRuntimeExceeded' }));
    await expect(trainer().train(request())).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: expect.stringContaining('MaxRuntimeInSeconds 86400') });

    smMock.reset();
    smMock.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn' });
    smMock.on(StopTrainingJobCommand).resolves({});
    const ac = new AbortController();
    let n = 0;
    smMock.on(DescribeTrainingJobCommand).callsFake(() => {
      n++;
      if (n === 1) ac.abort();
      return n < 2 ? { TrainingJobStatus: 'InProgress', SecondaryStatus: 'Training' } : { TrainingJobStatus: 'Stopped', SecondaryStatus: 'Stopped' };
    });
    await expect(trainer().train(request({ signal: ac.signal }))).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
    expect(smMock.commandCalls(StopTrainingJobCommand)).toHaveLength(1);
  });

  it('an already aborted run uploads nothing and creates no job (regression: it exported the dataset and created a job, then stopped it)', async () => {
    const before = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
    await expect(trainer().train(request({ signal: AbortSignal.abort() }))).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
    expect(smMock.calls()).toHaveLength(0);
    expect((await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }))).KeyCount).toBe(before.KeyCount);
  });

  it('an abort that arrives while the job completes still aborts the run: the output is not used (regression: the package was fetched and returned)', async () => {
    let job = '';
    smMock.on(CreateTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
      job = input.TrainingJobName;
      return {};
    });
    const ac = new AbortController();
    smMock.on(DescribeTrainingJobCommand).callsFake(async () => {
      const uri = await containerRun(job);
      ac.abort();
      return { TrainingJobStatus: 'Completed', SecondaryStatus: 'Completed', ModelArtifacts: { S3ModelArtifacts: uri } };
    });
    await expect(trainer().train(request({ signal: ac.signal }))).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
    expect(existsSync(join(out.dir, 'manifest.json'))).toBe(false);
  });

  it('an abort during the wait between polls stops the job at once, not after the poll interval', async () => {
    smMock.on(CreateTrainingJobCommand).resolves({});
    let stopped = false;
    smMock.on(StopTrainingJobCommand).callsFake(() => {
      stopped = true;
      return {};
    });
    smMock.on(DescribeTrainingJobCommand).callsFake(() => (stopped ? { TrainingJobStatus: 'Stopped', SecondaryStatus: 'Stopped' } : { TrainingJobStatus: 'InProgress', SecondaryStatus: 'Training' }));
    const ac = new AbortController();
    const slow = sagemakerTrainer({ cfg: config(s3.bucket), sagemaker: sm, s3: s3.client, clock: { now: () => now }, sleep: () => new Promise((r) => setTimeout(r, 60_000).unref()), codeVersion: 'test' });
    const run = slow.train(request({ signal: ac.signal, onProgress: (p) => (p.message.endsWith('InProgress/Training') ? setTimeout(() => ac.abort(), 50) : undefined) }));
    const t0 = Date.now();
    await expect(run).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(smMock.commandCalls(StopTrainingJobCommand)).toHaveLength(1);
  });

  it('a model.tar.gz that is not a valid package is refused (FLEET_TRAINING_OUTPUT_INVALID)', async () => {
    let job = '';
    smMock.on(CreateTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
      job = input.TrainingJobName;
      return {};
    });
    describeSequence(() => job, async () => ({ TrainingJobStatus: 'Completed', SecondaryStatus: 'Completed', ModelArtifacts: { S3ModelArtifacts: await containerRun(job, { broken: true }) } }));
    await expect(trainer().train(request())).rejects.toMatchObject({ code: 'FLEET_TRAINING_OUTPUT_INVALID' });
  });

  it('optional Neo: CreateCompilationJob on the model artifacts; the package records the DLR artifact beside the ONNX model', async () => {
    let job = '';
    smMock.on(CreateTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
      job = input.TrainingJobName;
      return {};
    });
    let artifact = '';
    describeSequence(() => job, async () => {
      artifact = await containerRun(job);
      return { TrainingJobStatus: 'Completed', SecondaryStatus: 'Completed', ModelArtifacts: { S3ModelArtifacts: artifact } };
    });
    smMock.on(CreateCompilationJobCommand).resolves({ CompilationJobArn: 'arn' });
    const compiled = Buffer.from('dlr compiled artifact bytes');
    let neoCalls = 0;
    smMock.on(DescribeCompilationJobCommand).callsFake(async (input: { CompilationJobName: string }) => {
      neoCalls++;
      if (neoCalls === 1) return { CompilationJobName: input.CompilationJobName, CompilationJobStatus: 'INPROGRESS' };
      const key = `ml/training/${job}/neo/model-jetson_nano.tar.gz`;
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: compiled }));
      return { CompilationJobName: input.CompilationJobName, CompilationJobStatus: 'COMPLETED', ModelArtifacts: { S3ModelArtifacts: `s3://${s3.bucket}/${key}` } };
    });
    const res = await trainer(true).train(request());
    const c = smMock.commandCalls(CreateCompilationJobCommand)[0]?.args[0].input;
    expect(c).toEqual({
      CompilationJobName: expect.stringMatching(/-neo$/),
      RoleArn: ROLE,
      InputConfig: { S3Uri: artifact, DataInputConfig: JSON.stringify({ input: [1, 1, 28, 28] }), Framework: 'ONNX' },
      OutputConfig: { S3OutputLocation: `s3://edgeloop-ml/ml/training/${job}/neo/`, TargetDevice: 'jetson_nano' },
      StoppingCondition: { MaxRuntimeInSeconds: 900 },
    });
    const manifest = JSON.parse(readFileSync(join(out.dir, 'manifest.json'), 'utf8'));
    expect(manifest.model_file).toBe('model.onnx');
    expect(manifest.files.find((f: { path: string }) => f.path === 'neo/compilation.json')).toMatchObject({ role: 'other' });
    const rec = JSON.parse(readFileSync(join(out.dir, 'neo', 'compilation.json'), 'utf8'));
    expect(rec).toMatchObject({ runtime: 'dlr', target: 'jetson_nano', framework: 'ONNX', bytes: compiled.length });
    expect(res.run.params.neo).toEqual(rec);
  });

  it('hyperparameters and job names stay within SageMaker limits', () => {
    expect(() => hyperParameters({ model: { name: 'm', version: '1.0.0' }, datasetVersion: 'd', seed: 1, params: { big: 'x'.repeat(2501) } })).toThrow(/longer than 2500/);
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`p${i}`, i]));
    expect(() => hyperParameters({ model: { name: 'm', version: '1.0.0' }, datasetVersion: 'd', seed: 1, params: many })).toThrow(/allows 100/);
    const name = trainingJobName({ model: { name: 'a-very-long-model-name-that-goes-on-and-on', version: '10.20.30-rc.1+build.5' }, datasetVersion: 'd', seed: 1 }, 0);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/);
  });
});

/**
 * The SageMaker side for the contract: CreateTrainingJob records the job and its
 * hyperparameters; DescribeTrainingJob reports it in progress once, then plays the container
 * (reading the train channel, writing a package with the requested name and version) and
 * completes, unless the job runs until stopped (`run_until_stopped`); StopTrainingJob stops it.
 */
trainerContract('sagemaker', async () => {
  const s3 = await startLocalS3('edgeloop-contract');
  const client = new SageMakerClient({ ...TEST_AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
  const mock = mockClient(client);
  const jobs = new Map<string, { hp: Record<string, string>; described: number; stopped: boolean }>();
  let received: string[] = [];
  mock.on(CreateTrainingJobCommand).callsFake((input: { TrainingJobName: string; HyperParameters: Record<string, string> }) => {
    jobs.set(input.TrainingJobName, { hp: input.HyperParameters, described: 0, stopped: false });
    return { TrainingJobArn: `arn:aws:sagemaker:eu-west-1:123456789012:training-job/${input.TrainingJobName}` };
  });
  mock.on(StopTrainingJobCommand).callsFake((input: { TrainingJobName: string }) => {
    jobs.get(input.TrainingJobName)!.stopped = true;
    return {};
  });
  mock.on(DescribeTrainingJobCommand).callsFake(async (input: { TrainingJobName: string }) => {
    const job = jobs.get(input.TrainingJobName)!;
    if (job.stopped) return { TrainingJobStatus: 'Stopped', SecondaryStatus: 'Stopped' };
    if (job.described++ === 0 || job.hp.run_until_stopped === 'true') return { TrainingJobStatus: 'InProgress', SecondaryStatus: 'Training' };
    const r = await playContainer(s3, input.TrainingJobName, { name: job.hp.edgeloop_model_name, version: job.hp.edgeloop_model_version });
    received.push(...r.received);
    return { TrainingJobStatus: 'Completed', SecondaryStatus: 'Completed', ModelArtifacts: { S3ModelArtifacts: r.uri } };
  });
  let now = Date.UTC(2026, 11, 1, 12);
  const images = (from: number, count: number): Promise<TrainRequest['train']> =>
    Promise.all(Array.from({ length: count }, async (_, i) => ({ id: `s-${from + i}`, label: CLASS_LABELS[(from + i) % 4]!, bytes: await patternImage(from + i) })));
  return {
    trainer: sagemakerTrainer({
      cfg: { ...config(s3.bucket), sagemaker: { ...config(s3.bucket).sagemaker, poll_s: 2 } },
      sagemaker: client,
      s3: s3.client,
      clock: { now: () => now },
      // Real waits of the poll interval (2 s): an abort that waited for the next poll would be late.
      sleep: async (ms) => {
        now += ms;
        await new Promise((r) => setTimeout(r, ms));
      },
      codeVersion: 'test',
    }),
    labels: CLASS_LABELS,
    train: await images(0, 6),
    holdout: await images(50, 3),
    params: { epochs: 1 },
    received: async () => {
      const got = received;
      received = [];
      return { sha256: got, complete: true };
    },
    long: { params: { run_until_stopped: true }, underway: (p) => p.message.endsWith(': InProgress/Training') },
    abortWithinMs: 1000,
    dispose: () => s3.close(),
  };
});
