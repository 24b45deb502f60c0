/**
 * `edgeloop serve --backend aws`: what the fleet service swaps in on AWS. Artifacts and samples
 * go to S3; rollouts become Greengrass deployments to thing groups; deployment status comes
 * back from Greengrass and IoT Jobs. With `--dry-run` nothing reaches AWS: every call the
 * backend would make is printed as one JSON line instead (the store stays local).
 */
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { systemClock, type Clock } from '../../shared/ids.js';
import { MANIFEST_FILE } from '../../shared/package/index.js';
import type { ModelRef } from '../../shared/schemas/common.js';
import type { RolloutBackendEnv, ServeOptions, ServiceRolloutBackend } from './service.js';
import type { AwsFleetConfig } from '../adapters/aws/aws-config.js';
import { sdkClients, sdkExecutor, type AwsCall, type AwsExecutor } from '../adapters/aws/calls.js';
import { recordingExecutor } from '../adapters/aws/dry-run.js';
import { GreengrassBackend, type ModelLocation } from '../adapters/aws/greengrass-backend.js';
import { managerSink } from '../adapters/aws/manager-sink.js';
import { S3ArtifactStore } from '../adapters/aws/s3-store.js';
import { sqliteLedgerStore } from '../adapters/sqlite/aws-ledger-repo.js';
import { sagemakerTrainer } from '../adapters/trainers/sagemaker-trainer.js';
import { FleetError } from '../errors.js';
import type { Trainer } from '../app/training/trainer.js';

export interface AwsServeOptions {
  cfg: AwsFleetConfig;
  dataDir: string;
  /** Print calls instead of sending them. */
  dryRun?: boolean;
  /** Where dry-run calls go (one JSON line each). */
  printCall?: (c: AwsCall) => void;
  /** Tests: executor and S3 client pointed at local stand-ins. */
  executor?: AwsExecutor;
  s3Client?: S3Client;
}

/** The S3 client of the configuration (an explicit endpoint means an S3-compatible server, path-style). */
export function s3ClientFor(cfg: AwsFleetConfig): S3Client {
  return new S3Client({ region: cfg.region, ...(cfg.s3.endpoint ? { endpoint: cfg.s3.endpoint, forcePathStyle: true } : {}) });
}

/**
 * The `sagemaker` trainer of the configuration (null without a `sagemaker` section), with the
 * SDK's default credential chain, for the learning loop's `trainers` table.
 */
export function sagemakerTrainerFor(cfg: AwsFleetConfig, o: { s3Client?: S3Client; sagemaker?: SageMakerClient; clock?: Clock } = {}): Trainer | null {
  if (!cfg.sagemaker) return null;
  return sagemakerTrainer({
    cfg: { region: cfg.region, s3: cfg.s3, sagemaker: cfg.sagemaker },
    sagemaker: o.sagemaker ?? new SageMakerClient({ region: cfg.region }),
    s3: o.s3Client ?? s3ClientFor(cfg),
    clock: o.clock ?? systemClock,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  });
}

/**
 * The AWS trainers for the learning loop's table (`edgeloop serve --backend aws --training FILE`):
 * `sagemaker` when the configuration has a `sagemaker` section (role, image, instance type from
 * it; data under `s3.bucket`/`s3.prefix`). In a dry run nothing may reach AWS, so the trainer
 * is there (a file naming it still validates) but a run is refused with `FLEET_USAGE`.
 */
export function awsTrainers(cfg: AwsFleetConfig, o: { dryRun?: boolean; s3Client?: S3Client; sagemaker?: SageMakerClient; clock?: Clock } = {}): Record<string, Trainer> {
  if (!cfg.sagemaker) return {};
  if (o.dryRun) {
    return {
      sagemaker: {
        name: 'sagemaker',
        train: () => Promise.reject(new FleetError('USAGE', '--dry-run sends nothing to AWS: the sagemaker trainer does not run')),
      },
    };
  }
  const t = sagemakerTrainerFor(cfg, o);
  return t ? { sagemaker: t } : {};
}

/** The ServeOptions parts of AWS mode: `artifacts` and `rolloutBackend`. */
export function awsServeParts(o: AwsServeOptions): Pick<ServeOptions, 'artifacts' | 'rolloutBackend'> {
  const { cfg } = o;
  const store = o.dryRun ? null : new S3ArtifactStore({ client: o.s3Client ?? s3ClientFor(cfg), bucket: cfg.s3.bucket, prefix: cfg.s3.prefix, partSize: cfg.s3.part_size_mb * 1024 * 1024, presignExpiresS: cfg.s3.presign_expires_s });
  const exec = o.executor ?? (o.dryRun ? recordingExecutor(cfg, o.printCall) : sdkExecutor(sdkClients(cfg.region)));
  const rolloutBackend = (env: RolloutBackendEnv): ServiceRolloutBackend => {
    const locate = async (m: ModelRef): Promise<ModelLocation> => {
      const v = env.registry.get(m.name, m.version);
      const loc: ModelLocation = { base_url: `${env.urls.http}/v1/models/${m.name}/${m.version}/package`, manifest_sha256: v.manifest_sha256 };
      if (!store) return loc;
      // Per-file presigned GETs: devices fetch from S3 directly, the fleet's HTTP API stays the fallback.
      const urls: Record<string, string> = { [MANIFEST_FILE]: await store.presignGet(v.manifest_sha256) };
      for (const f of v.files) urls[`files/${f.path}`] = await store.presignGet(f.sha256);
      return { ...loc, urls };
    };
    const backend = new GreengrassBackend({ cfg, aws: exec, ledger: sqliteLedgerStore(env.db, { importFrom: join(o.dataDir, 'aws-ledger.json') }), rollout: env.rollout, locate, clock: env.clock, log: env.log });
    return {
      name: backend.name,
      deliver: (id, changes) => backend.deliver(id, changes),
      // A dry run has no AWS to poll.
      start: (rollouts) => {
        if (!o.dryRun) backend.start(managerSink(rollouts, env.log));
      },
      stop: () => backend.stop(),
    };
  };
  return { ...(store ? { artifacts: store } : {}), rolloutBackend };
}
