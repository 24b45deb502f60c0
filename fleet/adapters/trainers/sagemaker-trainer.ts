/**
 * The `sagemaker` trainer: the {@link Trainer} port on a SageMaker training job.
 *
 * 1. The dataset version is exported in the same layout as the `command` trainer
 *    (dataset.json, labels.txt, train/<label>/<id>.<ext>) and uploaded to
 *    `s3://<bucket>/<prefix>training/<job>/input/train/`; a parent package goes to `.../parent/`.
 *    In the container they appear as /opt/ml/input/data/train and /opt/ml/input/data/parent.
 * 2. `CreateTrainingJob` with the user's image, the execution role, the params as
 *    hyperparameters (strings, as SageMaker requires; also in /opt/ml/input/config/hyperparameters.json),
 *    and the model name/version/dataset version/seed as hyperparameters too.
 * 3. `DescribeTrainingJob` every `poll_s` (clock and sleep passed in), each status change a
 *    progress line; an abort signal sends `StopTrainingJob`.
 * 4. The container writes a model package (manifest.json + files) to /opt/ml/model; SageMaker
 *    uploads it as model.tar.gz, which is fetched, unpacked into `outputDir` and validated
 *    (manifest schema, hashes, ONNX Runtime loads it) before the run counts.
 * 5. Optional Neo (`sagemaker.neo`): `CreateCompilationJob` on the same model.tar.gz. Neo's
 *    edge output runs on the DLR runtime, not on ONNX Runtime, so it never replaces the ONNX
 *    model the agent runs: the package records it in `neo/compilation.json` (target, runtime
 *    `dlr`, S3 URI and sha256 of the compiled artifact), listed in the manifest as an `other`
 *    file, for devices that do run DLR (Jetson, Raspberry Pi class targets).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  CreateCompilationJobCommand,
  CreateTrainingJobCommand,
  DescribeCompilationJobCommand,
  DescribeTrainingJobCommand,
  StopTrainingJobCommand,
  type CreateCompilationJobCommandInput,
  type CreateTrainingJobCommandInput,
  type DescribeTrainingJobCommandOutput,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import type { Clock } from '../../../shared/ids.js';
import { MANIFEST_FILE } from '../../../shared/package/index.js';
import { modelManifest, type ModelManifest } from '../../../shared/schemas/manifest.js';
import { FleetError } from '../../errors.js';
import { exportDataset } from './command-trainer.js';
import { validatePackageDir } from '../../app/training/package-check.js';
import type { Trainer, TrainRequest, TrainResult } from '../../app/training/trainer.js';
import type { AwsFleetConfig, SagemakerConfig } from '../aws/aws-config.js';
import { extractTarGz } from '../aws/tar.js';

export interface SagemakerTrainerDeps {
  cfg: Pick<AwsFleetConfig, 's3' | 'region'> & { sagemaker: SagemakerConfig };
  sagemaker: SageMakerClient;
  s3: S3Client;
  clock: Clock;
  sleep(ms: number): Promise<void>;
  /** Where the export is staged locally (default the OS temp dir). */
  workDir?: string;
  codeVersion?: string;
}

/** SageMaker's limits on hyperparameters: 100 keys, key <= 256 chars, value <= 2500 chars. */
const HYPERPARAMETER_LIMITS = { keys: 100, key: 256, value: 2500 } as const;

/** Rough progress by SageMaker's secondary status, for the progress bar. */
const SECONDARY_FRACTION: Record<string, number> = {
  Starting: 0.02,
  Pending: 0.02,
  LaunchingMLInstances: 0.05,
  PreparingTrainingStack: 0.08,
  Downloading: 0.1,
  DownloadingTrainingImage: 0.12,
  Training: 0.5,
  Uploading: 0.9,
  Completed: 1,
};

/** `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`: name, version and a hash of the run. */
export function trainingJobName(req: Pick<TrainRequest, 'model' | 'datasetVersion' | 'seed'>, now: number): string {
  const h = createHash('sha256').update(`${req.model.name}@${req.model.version}\n${req.datasetVersion}\n${req.seed}\n${now}`).digest('hex').slice(0, 10);
  const base = `edgeloop-${req.model.name}-${req.model.version}`.replace(/[^a-zA-Z0-9]+/g, '-').replace(/-+$/, '');
  return `${base.slice(0, 63 - 11)}-${h}`;
}

/** Params as SageMaker hyperparameters (string values), checked against the documented limits. */
export function hyperParameters(req: Pick<TrainRequest, 'model' | 'datasetVersion' | 'seed' | 'params'>): Record<string, string> {
  const hp: Record<string, string> = {
    edgeloop_model_name: req.model.name,
    edgeloop_model_version: req.model.version,
    edgeloop_dataset_version: req.datasetVersion,
    edgeloop_seed: String(req.seed),
  };
  for (const [k, v] of Object.entries(req.params)) {
    if (k === 'image' || k === 'instance_type') continue;
    hp[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  const problems: string[] = [];
  if (Object.keys(hp).length > HYPERPARAMETER_LIMITS.keys) problems.push(`${Object.keys(hp).length} hyperparameters, SageMaker allows ${HYPERPARAMETER_LIMITS.keys}`);
  for (const [k, v] of Object.entries(hp)) {
    if (k.length > HYPERPARAMETER_LIMITS.key) problems.push(`hyperparameter name ${k.slice(0, 40)}... is longer than ${HYPERPARAMETER_LIMITS.key}`);
    if (v.length > HYPERPARAMETER_LIMITS.value) problems.push(`hyperparameter ${k} is longer than ${HYPERPARAMETER_LIMITS.value} characters`);
  }
  if (problems.length) throw new FleetError('AWS_LIMIT_EXCEEDED', `training parameters do not fit SageMaker: ${problems.join('; ')}`, { details: { problems } });
  return hp;
}

/** Resolves when `p` does or when `signal` aborts, whichever is first. */
function untilAborted(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return p;
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    p.then(done, (err: unknown) => {
      signal.removeEventListener('abort', done);
      reject(err as Error);
    });
  });
}

function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m) throw new FleetError('TRAINING_FAILED', `not an S3 URI: ${uri}`);
  return { bucket: m[1] ?? '', key: m[2] ?? '' };
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out.sort();
}

export function sagemakerTrainer(deps: SagemakerTrainerDeps): Trainer {
  const sm = deps.cfg.sagemaker;
  const { bucket, prefix } = deps.cfg.s3;

  const send = async <T>(what: string, p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      if (err instanceof FleetError) throw err;
      throw new FleetError('AWS_CALL_FAILED', `${what} failed: ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
    }
  };

  const uploadDir = async (dir: string, keyPrefix: string): Promise<number> => {
    let n = 0;
    for (const f of await listFiles(dir)) {
      const body = await readFile(f);
      const rel = relative(dir, f).split('\\').join('/');
      await send('PutObject', deps.s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${keyPrefix}${rel}`, Body: body, ContentLength: body.length })));
      n++;
    }
    return n;
  };

  return {
    name: 'sagemaker',
    async train(req: TrainRequest): Promise<TrainResult> {
      if (req.signal?.aborted) throw new FleetError('TRAINING_ABORTED', 'the SageMaker training run was aborted before it started: nothing was uploaded');
      const started = deps.clock.now();
      const job = trainingJobName(req, started);
      const base = `${prefix}training/${job}/`;
      const progress = req.onProgress ?? (() => undefined);
      const work = await mkdtemp(join(deps.workDir ?? tmpdir(), 'edgeloop-sagemaker-'));
      try {
        // 1. Export the dataset version (and the parent) to S3.
        const exportDir = join(work, 'train');
        await exportDataset(req, exportDir);
        const n = await uploadDir(exportDir, `${base}input/train/`);
        if (req.parent) await uploadDir(req.parent.dir, `${base}input/parent/`);
        progress({ fraction: 0, message: `exported ${req.train.length} examples (${n} objects) to s3://${bucket}/${base}input/` });

        // 2. The training job.
        const input: CreateTrainingJobCommandInput = {
          TrainingJobName: job,
          AlgorithmSpecification: { TrainingImage: sm.image, TrainingInputMode: 'File' },
          RoleArn: sm.role_arn,
          HyperParameters: hyperParameters(req),
          InputDataConfig: [
            { ChannelName: 'train', DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `s3://${bucket}/${base}input/train/`, S3DataDistributionType: 'FullyReplicated' } } },
            ...(req.parent
              ? [{ ChannelName: 'parent', DataSource: { S3DataSource: { S3DataType: 'S3Prefix' as const, S3Uri: `s3://${bucket}/${base}input/parent/`, S3DataDistributionType: 'FullyReplicated' as const } } }]
              : []),
          ],
          OutputDataConfig: { S3OutputPath: `s3://${bucket}/${base}output/` },
          ResourceConfig: { InstanceType: sm.instance_type as never, InstanceCount: sm.instance_count, VolumeSizeInGB: sm.volume_gb },
          StoppingCondition: { MaxRuntimeInSeconds: sm.max_runtime_s },
          Tags: [
            { Key: 'edgeloop:model', Value: `${req.model.name}@${req.model.version}` },
            { Key: 'edgeloop:dataset', Value: req.datasetVersion.slice(0, 256) },
          ],
        };
        await send('CreateTrainingJob', deps.sagemaker.send(new CreateTrainingJobCommand(input)));
        progress({ fraction: 0.01, message: `SageMaker training job ${job} created` });

        // 3. Follow it.
        let last = '';
        let d: DescribeTrainingJobCommandOutput;
        let stopRequested = false;
        for (;;) {
          if (req.signal?.aborted && !stopRequested) {
            stopRequested = true;
            await send('StopTrainingJob', deps.sagemaker.send(new StopTrainingJobCommand({ TrainingJobName: job })));
            progress({ message: `stop requested for ${job}` });
          }
          d = await send('DescribeTrainingJob', deps.sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: job })));
          const status = `${d.TrainingJobStatus ?? '?'}/${d.SecondaryStatus ?? '?'}`;
          if (status !== last) {
            last = status;
            const fraction = SECONDARY_FRACTION[d.SecondaryStatus ?? ''];
            const metrics = Object.fromEntries((d.FinalMetricDataList ?? []).filter((m) => m.MetricName && m.Value !== undefined).map((m) => [m.MetricName as string, m.Value as number]));
            progress({ ...(fraction !== undefined ? { fraction } : {}), message: `${job}: ${status}${d.SecondaryStatusTransitions?.at(-1)?.StatusMessage ? ` (${d.SecondaryStatusTransitions.at(-1)?.StatusMessage})` : ''}`, ...(Object.keys(metrics).length ? { metrics } : {}) });
          }
          if (d.TrainingJobStatus === 'Completed') break;
          if (d.TrainingJobStatus === 'Failed') throw new FleetError('TRAINING_FAILED', `SageMaker training job ${job} failed: ${d.FailureReason ?? 'no reason given'}`, { details: { job, status, failure_reason: d.FailureReason } });
          if (d.TrainingJobStatus === 'Stopped') {
            if (stopRequested) throw new FleetError('TRAINING_ABORTED', `SageMaker training job ${job} was stopped on request`, { details: { job } });
            throw new FleetError('TRAINING_FAILED', `SageMaker training job ${job} stopped: ${d.SecondaryStatus === 'MaxRuntimeExceeded' ? `it ran past MaxRuntimeInSeconds ${sm.max_runtime_s}` : (d.FailureReason ?? 'stopped outside the fleet')}`, { details: { job, status } });
          }
          if (d.TrainingJobStatus === 'Deleting') throw new FleetError('TRAINING_FAILED', `SageMaker training job ${job} is being deleted`, { details: { job } });
          // An abort stops the job at once, not at the next poll.
          await untilAborted(deps.sleep(sm.poll_s * 1000), stopRequested ? undefined : req.signal);
        }
        // A job that completed while the abort (or its stop) was on the way: the run was still aborted.
        if (req.signal?.aborted) throw new FleetError('TRAINING_ABORTED', `SageMaker training job ${job} completed after the run was aborted; its output is not used`, { details: { job } });

        // 4. Fetch and validate the package.
        const artifact = d.ModelArtifacts?.S3ModelArtifacts;
        if (!artifact) throw new FleetError('TRAINING_OUTPUT_INVALID', `SageMaker training job ${job} completed without ModelArtifacts`);
        const loc = parseS3Uri(artifact);
        const obj = await send('GetObject', deps.s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key })));
        // Streamed from the response into the package directory: the archive may be 4 GiB.
        const files = await extractTarGz(obj.Body as AsyncIterable<Uint8Array>, req.outputDir);
        progress({ fraction: 0.95, message: `fetched ${artifact} (${obj.ContentLength ?? '?'} bytes, ${files.length} files)` });
        let manifest = await validatePackageDir(req.outputDir, { expect: req.model, labels: req.labels });

        // 5. Optional Neo compilation, recorded next to (never instead of) the ONNX model.
        const params: Record<string, unknown> = { ...req.params, image: sm.image, instance_type: sm.instance_type, training_job: job, model_artifacts: artifact };
        if (sm.neo) {
          const neo = await compileWithNeo(deps, req, manifest, artifact, `${base}neo/`, send, progress);
          manifest = await recordNeo(req.outputDir, manifest, neo);
          params.neo = neo;
          manifest = await validatePackageDir(req.outputDir, { expect: req.model, labels: req.labels });
        }
        const metrics = Object.fromEntries((d.FinalMetricDataList ?? []).filter((m) => m.MetricName && m.Value !== undefined).map((m) => [m.MetricName as string, m.Value as number]));
        progress({ fraction: 1, message: `${job} done: ${manifest.name}@${manifest.version}` });
        return { packageDir: req.outputDir, metrics, durationMs: deps.clock.now() - started, run: { trainer: 'sagemaker', params, seed: req.seed, code_version: deps.codeVersion ?? 'unknown' } };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
  };
}

export interface NeoRecord {
  runtime: 'dlr';
  compilation_job: string;
  target: string;
  framework: string;
  s3_uri: string;
  sha256: string;
  bytes: number;
}

async function compileWithNeo(
  deps: SagemakerTrainerDeps,
  req: TrainRequest,
  manifest: ModelManifest,
  artifact: string,
  outPrefix: string,
  send: <T>(what: string, p: Promise<T>) => Promise<T>,
  progress: NonNullable<TrainRequest['onProgress']>,
): Promise<NeoRecord> {
  const neo = deps.cfg.sagemaker.neo!;
  const { bucket } = deps.cfg.s3;
  const name = `${trainingJobName(req, deps.clock.now()).slice(0, 58)}-neo`;
  // Neo wants the input shapes by input name; symbolic dims (batch) become 1.
  const shapes = Object.fromEntries(manifest.inputs.map((i) => [i.name, i.shape.map((d) => (typeof d === 'number' ? d : 1))]));
  const input: CreateCompilationJobCommandInput = {
    CompilationJobName: name,
    RoleArn: deps.cfg.sagemaker.role_arn,
    InputConfig: { S3Uri: artifact, DataInputConfig: JSON.stringify(shapes), Framework: neo.framework },
    OutputConfig: {
      S3OutputLocation: `s3://${bucket}/${outPrefix}`,
      ...(neo.target_device ? { TargetDevice: neo.target_device as never } : {}),
      ...(neo.target_platform ? { TargetPlatform: { Os: neo.target_platform.os, Arch: neo.target_platform.arch, ...(neo.target_platform.accelerator ? { Accelerator: neo.target_platform.accelerator } : {}) } } : {}),
    },
    StoppingCondition: { MaxRuntimeInSeconds: neo.max_runtime_s },
  };
  await send('CreateCompilationJob', deps.sagemaker.send(new CreateCompilationJobCommand(input)));
  progress({ fraction: 0.96, message: `Neo compilation job ${name} created` });
  for (;;) {
    const d = await send('DescribeCompilationJob', deps.sagemaker.send(new DescribeCompilationJobCommand({ CompilationJobName: name })));
    const s = d.CompilationJobStatus;
    if (s === 'COMPLETED') {
      const uri = d.ModelArtifacts?.S3ModelArtifacts;
      if (!uri) throw new FleetError('AWS_JOB_FAILED', `Neo compilation job ${name} completed without artifacts`);
      const loc = parseS3Uri(uri);
      const obj = await send('GetObject', deps.s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key })));
      const bytes = await (obj.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
      const target = neo.target_device ?? `${neo.target_platform?.os}_${neo.target_platform?.arch}${neo.target_platform?.accelerator ? `_${neo.target_platform.accelerator}` : ''}`.toLowerCase();
      return { runtime: 'dlr', compilation_job: name, target, framework: neo.framework, s3_uri: uri, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
    }
    if (s === 'FAILED' || s === 'STOPPED') throw new FleetError('AWS_JOB_FAILED', `Neo compilation job ${name} ${s.toLowerCase()}: ${d.FailureReason ?? 'no reason given'}`, { details: { job: name, status: s } });
    await deps.sleep(deps.cfg.sagemaker.poll_s * 1000);
  }
}

/** Add `neo/compilation.json` to the package and its manifest (the registry re-signs on push). */
async function recordNeo(dir: string, manifest: ModelManifest, neo: NeoRecord): Promise<ModelManifest> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(dir, 'neo'), { recursive: true });
  const body = Buffer.from(`${JSON.stringify(neo, null, 2)}\n`);
  await writeFile(join(dir, 'neo', 'compilation.json'), body);
  const files = manifest.files.filter((f) => f.path !== 'neo/compilation.json');
  files.push({ path: 'neo/compilation.json', sha256: createHash('sha256').update(body).digest('hex'), bytes: body.length, role: 'other' });
  // The container's signature (if any) covered the old file list: drop it; the fleet signs on push.
  const { signature: _dropped, ...rest } = manifest;
  void _dropped;
  const next = modelManifest.parse({ ...rest, files });
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(next, null, 2)}\n`);
  await stat(join(dir, MANIFEST_FILE));
  return next;
}
