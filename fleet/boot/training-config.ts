/**
 * The learning loop's configuration file (`edgeloop serve --training FILE`, JSON): validated
 * once at start, every bad key named in one `FLEET_TRAINING_CONFIG_INVALID` error, then frozen.
 *
 * ```json
 * { "tick_s": 10,
 *   "trainers": { "command": { "command": "python3", "args": ["train.py"], "timeout_s": 3600 } },
 *   "models": [{ "name": "digits", "trainer": "local", "base": [...], "triggers": {...}, "gate": {...} }] }
 * ```
 *
 * `models` entries are the loop's own `loopModelConfig` (one schema source). Trainers: `local`
 * is always there; `command` when its section is set; others (`sagemaker` in AWS mode) come from
 * the caller, which knows whether it can build them. A model naming a trainer that is not
 * available is refused here, not at its first run. Base sets resolve `mnist` and `artifacts`
 * references (fleet/app/training/base-sets.ts).
 */
import { z } from 'zod';
import { parseConfig, type ConfigKind } from '../../shared/config.js';
import { loadConfigFile } from '../adapters/fs/config-file.js';
import type { FleetContext } from '../app/context.js';
import { renderDigitPng } from '../ml/digits.js';
import { FleetError } from '../errors.js';
import { artifactBaseSet, baseSets, mnistBaseSet } from '../app/training/base-sets.js';
import { commandTrainer, DATASET_FORMATS } from '../adapters/trainers/command-trainer.js';
import { localTrainer } from '../adapters/trainers/local-trainer.js';
import type { BaseSetSource } from '../app/training/base-source.js';
import { loopModelConfig, type LoopModelConfig } from '../app/training/config.js';
import type { Trainer } from '../app/training/trainer.js';

/** Base-set sources a training file may reference. */
export const BASE_SET_SOURCES = ['mnist', 'artifacts'] as const;

export const commandTrainerConfig = z.strictObject({
  command: z.string().min(1).describe('The training program to run.'),
  args: z.array(z.string()).default([]).describe('Its arguments.'),
  cwd: z.string().min(1).optional().meta({ description: 'Working directory of the command.', defaultText: "the fleet's" }),
  timeout_s: z.number().int().positive().default(3600).describe('Time limit (seconds): past it the run is stopped and fails with `FLEET_TRAINING_TIMEOUT`.'),
  dataset_format: z
    .enum(DATASET_FORMATS)
    .default('auto')
    .describe(
      'Layout of `DATASET_DIR`: `edgeloop` (train/<label>/ + dataset.json), `yolo` (Ultralytics: images/ + labels/{train,val}/*.txt + data.yaml) or `coco` (images/ + annotations/instances_{train,val}.json); `auto` is `edgeloop` for class labels and `yolo` for box labels. `yolo`/`coco` on a dataset without boxes fails the run. See docs/learning-loop.md.',
    ),
});

export const trainingFileConfig = z.strictObject({
  tick_s: z.number().int().min(1).default(10).describe("How often each model's trigger policy is checked (seconds)."),
  trainers: z
    .strictObject({
      command: commandTrainerConfig
        .optional()
        .describe('The `command` trainer: runs your own training program (any framework) on the dataset exported to `DATASET_DIR`; absent: there is no `command` trainer.'),
    })
    .prefault({})
    .describe('Trainers besides `local`, which is always there.'),
  models: z.array(loopModelConfig).min(1).describe("One entry per model: the learning loop's model configuration."),
});
export type TrainingFileConfig = z.output<typeof trainingFileConfig>;

const TRAINING_CONFIG: ConfigKind = { what: 'training configuration', error: (m, o) => new FleetError('TRAINING_CONFIG_INVALID', m, o) };

/** What the trainer cross-check knows of the mode. */
interface TrainerNames {
  extraTrainers?: readonly string[];
  hint?: Readonly<Record<string, string>>;
}

/**
 * Validate a training configuration object. `extraTrainers` names the trainers the caller adds
 * (`sagemaker` in AWS mode with a `sagemaker` section); `hint` explains where a missing one comes from.
 */
export function parseTrainingConfig(data: unknown, o: TrainerNames = {}): TrainingFileConfig {
  return parseConfig(trainingFileConfig, data, TRAINING_CONFIG, { check: (raw, parsed) => crossChecks(raw, parsed, o) });
}

/**
 * The checks the schema cannot make (trainers depend on the mode). They run on every model entry
 * that parses on its own, so one error names every bad key, not only the schema's.
 */
function crossChecks(data: unknown, parsed: TrainingFileConfig | undefined, o: TrainerNames): string[] {
  const issues: string[] = [];
  const raw = (data && typeof data === 'object' ? data : {}) as { trainers?: { command?: unknown }; models?: unknown };
  const hasCommand = parsed ? parsed.trainers.command !== undefined : typeof raw.trainers?.command === 'object' && raw.trainers.command !== null;
  const names = ['local', ...(hasCommand ? ['command'] : []), ...(o.extraTrainers ?? [])];
  const models = parsed ? parsed.models : Array.isArray(raw.models) ? raw.models.map((m) => loopModelConfig.safeParse(m)).map((p) => (p.success ? p.data : null)) : [];
  const seen = new Set<string>();
  models.forEach((m: LoopModelConfig | null, i) => {
    if (!m) return;
    if (seen.has(m.name)) issues.push(`models.${i}.name: ${m.name} is configured twice`);
    seen.add(m.name);
    if (!names.includes(m.trainer)) issues.push(`models.${i}.trainer: no trainer ${m.trainer} (available: ${names.join(', ')})${o.hint?.[m.trainer] ? `; ${o.hint[m.trainer]}` : ''}`);
    m.base.forEach((b, j) => {
      if (!(BASE_SET_SOURCES as readonly string[]).includes(b.source)) issues.push(`models.${i}.base.${j}.source: unknown base set source ${b.source} (known: ${BASE_SET_SOURCES.join(', ')})`);
      else if (b.source === 'mnist' && (b.offset === undefined || b.count === undefined)) issues.push(`models.${i}.base.${j}: an mnist base set needs offset and count`);
      else if (b.source === 'artifacts' && !b.items?.length) issues.push(`models.${i}.base.${j}.items: an artifacts base set needs items`);
    });
  });
  return issues;
}

/** Read and validate the JSON training file (`FLEET_TRAINING_CONFIG_INVALID` when unreadable or not JSON too). */
export async function loadTrainingConfig(path: string, o: TrainerNames = {}): Promise<TrainingFileConfig> {
  return loadConfigFile(trainingFileConfig, TRAINING_CONFIG, path, { check: (raw, parsed) => crossChecks(raw, parsed, o) });
}

/** The trainer table of a training file: `local`, `command` when configured, plus `extra` (e.g. `{ sagemaker }`). */
export function trainerTable(cfg: TrainingFileConfig, extra: Readonly<Record<string, Trainer>> = {}): Record<string, Trainer> {
  const c = cfg.trainers.command;
  return {
    local: localTrainer(),
    ...(c ? { command: commandTrainer({ command: c.command, args: c.args, timeoutMs: c.timeout_s * 1000, datasetFormat: c.dataset_format, ...(c.cwd ? { cwd: c.cwd } : {}) }) } : {}),
    ...extra,
  };
}

/** `mnist` (rendered like camera frames, as the demo does) and `artifacts` (the fleet's own store) references. */
export function fileBaseSets(ctx: Pick<FleetContext, 'artifacts'>): BaseSetSource {
  return baseSets({ mnist: mnistBaseSet({ render: (p) => renderDigitPng(p) }), artifacts: artifactBaseSet(ctx.artifacts) });
}

/** What `startFleetService` takes as `training` for a validated file. */
export function trainingSetup(cfg: TrainingFileConfig, extra: Readonly<Record<string, Trainer>> = {}): {
  trainers: Record<string, Trainer>;
  base: (ctx: FleetContext) => BaseSetSource;
  models: TrainingFileConfig['models'];
  tickMs: number;
} {
  return { trainers: trainerTable(cfg, extra), base: fileBaseSets, models: cfg.models, tickMs: cfg.tick_s * 1000 };
}
