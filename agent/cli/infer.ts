import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type { Logger } from 'pino';
import { errorLine, exitCodeOf, isEdgeloopError, type ExitCode } from '../../shared/errors.js';
import { seededRandom, systemClock } from '../../shared/ids.js';
import { inferRequest, type InferResult } from '../../shared/schemas/index.js';
import { parseJsonWith } from '../../shared/validate.js';
import { parseAgentConfig, poolSettings, readFleetPublicKey } from '../config.js';
import { Registry } from '../metrics.js';
import { readModelPackage } from '../model/package.js';
import type { ModelInput } from '../model/runtime.js';
import { InferenceService } from '../service.js';

export interface OneShotOptions {
  modelDir: string;
  files: string[];
  allowUnsigned: boolean;
  publicKeyFile?: string | undefined;
  threads?: number | undefined;
  log: Logger;
}

/** A failed input carries its error's code and the exit code its catalogue entry gives. */
export type OneShotLine = { file: string; ok: true; result: InferResult } | { file: string; ok: false; code: string; message: string; exit: ExitCode };

/** A file -> model input: `.json` holds a tensor (or an inference request), anything else is an image. */
async function fileInput(file: string): Promise<ModelInput> {
  const bytes = await readFile(file);
  if (extname(file).toLowerCase() !== '.json') return { kind: 'image', bytes };
  const text = bytes.toString('utf8');
  const parsed = JSON.parse(text) as unknown;
  if (Array.isArray(parsed)) return { kind: 'tensor', tensor: parsed as number[] };
  const r = parseJsonWith(inferRequest, text, 'INPUT_INVALID', `inference request in ${file}`);
  return r.image_b64 !== undefined ? { kind: 'image', bytes: Buffer.from(r.image_b64, 'base64') } : { kind: 'tensor', tensor: r.tensor!, shape: r.shape };
}

/**
 * One-shot inference over files with the same code path as the running agent (verified
 * package, worker-thread session, manifest preprocessing), minus capture. Yields one line per
 * input; a bad input yields its error code and the next input is still processed.
 */
export async function* inferFiles(o: OneShotOptions): AsyncGenerator<OneShotLine> {
  const cfg = parseAgentConfig({ allow_unsigned: o.allowUnsigned, ...(o.publicKeyFile ? { fleet_public_key: o.publicKeyFile } : {}), ...(o.threads ? { inference: { intra_op_threads: o.threads } } : {}) });
  const pkg = await readModelPackage(o.modelDir, { publicKeyPem: readFleetPublicKey(cfg), allowUnsigned: cfg.allow_unsigned });
  const service = new InferenceService({
    deviceId: 'cli',
    clock: systemClock,
    random: seededRandom(1),
    log: o.log,
    metrics: new Registry(),
    queue: null,
    warmupRuns: 1,
    pool: poolSettings({ ...cfg.inference, workers: 1, max_pending: 16 }),
  });
  try {
    await service.activate(pkg);
    for (const file of o.files) {
      try {
        const results = await service.infer(await fileInput(file), { source: 'cli', origin: file });
        for (const result of results) yield { file, ok: true, result };
      } catch (err) {
        const code = isEdgeloopError(err) ? err.code : (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'INPUT_INVALID' : 'INTERNAL';
        yield { file, ok: false, code, message: errorLine(err).replace(/^[A-Z_]+: /, ''), exit: exitCodeOf(err) };
      }
    }
  } finally {
    await service.close();
  }
}
