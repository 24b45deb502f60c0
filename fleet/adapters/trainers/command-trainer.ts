/**
 * The `command` trainer: runs a user's own training command (PyTorch, Keras, a shell script,
 * anything) on the dataset version exported to a directory, then validates what it wrote as a
 * model package.
 *
 * Dataset layout under DATASET_DIR (`datasetFormat`; `auto`, the default, is `edgeloop` for a
 * classifier's dataset and `yolo` for one with box labels):
 *
 * `edgeloop`:
 *
 *   dataset.json              { schema, format, dataset_version, model, labels, seed, params,
 *                               examples: [{ id, label, file, sha256, bytes, boxes?, frame? }] }
 *   labels.txt                one label per line, in output order
 *   train/<label>/<id>.<ext>  the examples' bytes as devices captured them (png/jpg/webp/bin);
 *                             a detection example sits in train/ with its boxes in dataset.json
 *
 * `yolo` and `coco`: the standard detection layouts (detection-layouts.ts), train and val (the
 * field holdout) splits, plus labels.txt and dataset.json (without `examples`).
 *
 * Environment of the command (on top of `env`, default this process's environment so PATH
 * reaches it): DATASET_DIR, OUTPUT_DIR (an empty directory for the package), PARENT_MODEL (the
 * parent package directory, empty when training from scratch), SEED, MODEL_NAME, MODEL_VERSION,
 * DATASET_VERSION, TRAIN_PARAMS (the params as JSON).
 *
 * Every stdout/stderr line becomes a progress message; a stdout line that is a JSON object with
 * a `message` string (optionally `fraction`, `metrics`) is passed on as structured progress.
 * Errors: FLEET_TRAINING_FAILED (cannot start, non-zero exit or signal), FLEET_TRAINING_TIMEOUT,
 * FLEET_TRAINING_ABORTED, FLEET_TRAINING_OUTPUT_INVALID.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { sha256Hex } from '../../../shared/ids.js';
import { sniffImageFormat } from '../../../shared/inference/preprocess.js';
import { FleetError } from '../../errors.js';
import { validatePackageDir } from '../../app/training/package-check.js';
import { writeDetectionLayout, type DetectionFormat } from './detection-layouts.js';
import type { Trainer, TrainProgress, TrainRequest, TrainResult } from '../../app/training/trainer.js';

export interface CommandTrainerOptions {
  command: string;
  args?: readonly string[];
  /** Base environment of the command (default: this process's). The DATASET_DIR etc. variables are set on top. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Kill the command after this long (default 1 hour). */
  timeoutMs?: number;
  /** Where dataset exports go (default the OS temp dir); each run gets its own subdirectory, removed afterwards. */
  workDir?: string;
  /** Keep the exported dataset directory after the run (debugging). */
  keepDataset?: boolean;
  /** Working directory of the command. */
  cwd?: string;
  monotonicMs?: () => number;
  /** Grace between SIGTERM and SIGKILL when stopping the command. */
  killGraceMs?: number;
  /** Layout of DATASET_DIR (default `auto`: `edgeloop` for class labels, `yolo` when the examples carry boxes). */
  datasetFormat?: DatasetFormat;
}

export const DATASET_FORMATS = ['auto', 'edgeloop', 'yolo', 'coco'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

const DATASET_EXPORT_SCHEMA = 'edgeloop.dataset-export/1';

const EXT: Record<string, string> = { png: 'png', jpeg: 'jpg', webp: 'webp', gif: 'gif', tiff: 'tiff', unknown: 'bin' };
/** File-name-safe form of a label or id; distinct inputs that collide get a hash suffix. */
const safe = (s: string): string => {
  const cleaned = s.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_').slice(0, 80) || '_';
  return cleaned === s ? s : `${cleaned}-${sha256Hex(Buffer.from(s)).slice(0, 8)}`;
};

/**
 * Writes the request's dataset in the documented layout (`format`, default `auto`); returns the
 * directory, the layout it chose and a line saying what it wrote. Throws `FLEET_TRAINING_FAILED`
 * for `yolo`/`coco` on a dataset without a single box label.
 */
export async function exportDataset(req: TrainRequest, dir: string, format: DatasetFormat = 'auto'): Promise<{ dir: string; format: Exclude<DatasetFormat, 'auto'>; summary: string }> {
  const val = req.val ?? [];
  const hasBoxes = req.train.some((e) => e.boxes) || val.some((e) => e.boxes);
  const chosen = format === 'auto' ? (hasBoxes ? 'yolo' : 'edgeloop') : format;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'labels.txt'), `${req.labels.join('\n')}\n`);
  const head = { schema: DATASET_EXPORT_SCHEMA, format: chosen, dataset_version: req.datasetVersion, model: req.model, labels: req.labels, seed: req.seed, params: req.params, parent: req.parent?.ref ?? null };
  if (chosen !== 'edgeloop') {
    if (!hasBoxes) throw new FleetError('TRAINING_FAILED', `dataset_format ${chosen} needs box labels, and dataset ${req.datasetVersion} has none (a classifier's dataset: use edgeloop or auto)`, { details: { format: chosen } });
    const n = await writeDetectionLayout({ train: req.train, val, labels: req.labels, format: chosen as DetectionFormat, safeName: safe }, dir);
    await writeFile(join(dir, 'dataset.json'), `${JSON.stringify({ ...head, counts: n }, null, 2)}\n`);
    return { dir, format: chosen, summary: `exported ${n.train} train and ${n.val} val images with ${n.boxes} boxes (${chosen} layout${n.skipped ? `; ${n.skipped} examples without boxes left out` : ''})` };
  }
  await mkdir(join(dir, 'train'), { recursive: true });
  const examples: Array<{ id: string; label: string; file: string; sha256: string; bytes: number }> = [];
  const made = new Set<string>();
  for (const ex of req.train) {
    const labelDir = ex.boxes ? 'train' : join('train', safe(ex.label));
    if (!made.has(labelDir)) {
      await mkdir(join(dir, labelDir), { recursive: true });
      made.add(labelDir);
    }
    const file = join(labelDir, `${safe(ex.id)}.${EXT[sniffImageFormat(ex.bytes)]}`);
    await writeFile(join(dir, file), ex.bytes);
    examples.push({ id: ex.id, label: ex.label, file: file.split('\\').join('/'), sha256: sha256Hex(ex.bytes), bytes: ex.bytes.length, ...(ex.boxes ? { boxes: ex.boxes, frame: ex.frame } : {}) });
  }
  await writeFile(join(dir, 'dataset.json'), `${JSON.stringify({ ...head, examples }, null, 2)}\n`);
  return { dir, format: chosen, summary: `exported ${req.train.length} examples (edgeloop layout)` };
}

/** The `command` trainer. */
export function commandTrainer(opts: CommandTrainerOptions): Trainer {
  const mono = opts.monotonicMs ?? (() => performance.now());
  const timeoutMs = opts.timeoutMs ?? 3_600_000;
  const grace = opts.killGraceMs ?? 2000;
  return {
    name: 'command',
    async train(req: TrainRequest): Promise<TrainResult> {
      const t0 = mono();
      if (req.signal?.aborted) throw new FleetError('TRAINING_ABORTED', 'the training run was aborted before it started');
      const progress = (p: TrainProgress): void => req.onProgress?.(p);
      const work = await mkdtemp(join(opts.workDir ?? tmpdir(), 'edgeloop-command-train-'));
      try {
        const exported = await exportDataset(req, join(work, 'dataset'), opts.datasetFormat);
        const datasetDir = exported.dir;
        await mkdir(req.outputDir, { recursive: true });
        progress({ message: `${exported.summary} to ${datasetDir}`, fraction: 0 });
        const env: Record<string, string> = {};
        for (const [k, v] of Object.entries(opts.env ?? process.env)) if (v !== undefined) env[k] = v;
        Object.assign(env, {
          DATASET_DIR: datasetDir,
          OUTPUT_DIR: req.outputDir,
          PARENT_MODEL: req.parent?.dir ?? '',
          SEED: String(req.seed),
          MODEL_NAME: req.model.name,
          MODEL_VERSION: req.model.version,
          DATASET_VERSION: req.datasetVersion,
          TRAIN_PARAMS: JSON.stringify(req.params),
        });
        await runCommand(opts, env, timeoutMs, grace, progress, req.signal);
        progress({ message: 'validating the output package', fraction: 0.98 });
        const manifest = await validatePackageDir(req.outputDir, { expect: req.model, labels: req.labels });
        const metrics: Record<string, number> = {};
        for (const [k, v] of Object.entries(manifest.evaluation ?? {})) if (typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
        const durationMs = mono() - t0;
        progress({ message: `command finished in ${(durationMs / 1000).toFixed(1)} s; package valid`, fraction: 1, metrics });
        return {
          packageDir: req.outputDir,
          metrics,
          durationMs,
          run: { trainer: 'command', params: { ...req.params, command: opts.command, args: [...(opts.args ?? [])] }, seed: req.seed, code_version: manifest.lineage?.code_version ?? `command:${opts.command}` },
        };
      } finally {
        if (!opts.keepDataset) await rm(work, { recursive: true, force: true });
      }
    },
  };
}

/** Runs the command to completion; resolves with the last stderr lines, rejects with a coded error. */
function runCommand(opts: CommandTrainerOptions, env: Record<string, string>, timeoutMs: number, grace: number, progress: (p: TrainProgress) => void, signal?: AbortSignal): Promise<string[]> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout or abort also stops the command's children.
    const child = spawn(opts.command, [...(opts.args ?? [])], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: process.platform !== 'win32' });
    const stderrTail: string[] = [];
    let stopped: 'timeout' | 'abort' | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    const kill = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined && process.platform !== 'win32') process.kill(-child.pid, sig);
        else child.kill(sig);
      } catch {
        /* already gone */
      }
    };
    const stop = (why: 'timeout' | 'abort'): void => {
      if (stopped) return;
      stopped = why;
      kill('SIGTERM');
      killTimer = setTimeout(() => kill('SIGKILL'), grace);
      killTimer.unref();
    };
    const timer = setTimeout(() => stop('timeout'), timeoutMs);
    const onAbort = (): void => stop('abort');
    signal?.addEventListener('abort', onAbort, { once: true });

    createInterface({ input: child.stdout }).on('line', (line) => progress(structured(line) ?? { message: line }));
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > 20) stderrTail.shift();
      progress({ message: `stderr: ${line}` });
    });
    let spawnError: Error | null = null;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      const details = { command: opts.command, exit_code: code, signal: sig, stderr_tail: stderrTail };
      if (stopped === 'timeout') reject(new FleetError('TRAINING_TIMEOUT', `training command ${opts.command} ran longer than ${timeoutMs} ms and was stopped`, { details }));
      else if (stopped === 'abort') reject(new FleetError('TRAINING_ABORTED', `training command ${opts.command} was aborted`, { details, cause: signal?.reason }));
      else if (spawnError) reject(new FleetError('TRAINING_FAILED', `training command ${opts.command} could not start: ${spawnError.message}`, { cause: spawnError, details }));
      else if (code !== 0) reject(new FleetError('TRAINING_FAILED', `training command ${opts.command} exited with ${code === null ? `signal ${sig}` : `code ${code}`}${stderrTail.length ? `: ${stderrTail.at(-1)}` : ''}`, { details }));
      else resolve(stderrTail);
    });
  });
}

function structured(line: string): TrainProgress | null {
  if (!line.startsWith('{')) return null;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (typeof o.message !== 'string') return null;
    const p: TrainProgress = { message: o.message };
    if (typeof o.fraction === 'number' && o.fraction >= 0 && o.fraction <= 1) p.fraction = o.fraction;
    if (o.metrics && typeof o.metrics === 'object') {
      const m: Record<string, number> = {};
      for (const [k, v] of Object.entries(o.metrics)) if (typeof v === 'number') m[k] = v;
      p.metrics = m;
    }
    return p;
  } catch {
    return null;
  }
}
