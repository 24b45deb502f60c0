import { decoderOutputs, yoloLayoutsFor } from '../inference/detect.js';
import type { ModelManifest, ModelTask } from '../schemas/index.js';
import type { PackageProblem } from './problems.js';

/** The manifest of one task, narrowed. */
export type TaskManifest<T extends ModelTask> = Extract<ModelManifest, { task: T }>;

/** What a task adds to the package rules: cross-field checks of its postprocessing and labels. */
export interface TaskRules<T extends ModelTask> {
  /** Problems of a manifest that passed the schema; empty when the task's fields agree. */
  check(m: TaskManifest<T>): PackageProblem[];
}

/** The output tensor the postprocessing reads: named, or the first output. */
function scoredOutput(m: TaskManifest<'classification'>): string | undefined {
  return m.postprocessing.output ?? m.outputs[0]?.name;
}

const classification: TaskRules<'classification'> = {
  check(m) {
    const problems: PackageProblem[] = [];
    const out = scoredOutput(m);
    const spec = m.outputs.find((o) => o.name === out);
    if (!spec) problems.push({ rule: 'output_unknown', message: `postprocessing output ${out} is not a model output` });
    const classes = spec?.shape.at(-1);
    if (typeof classes === 'number' && classes !== m.labels.length) {
      problems.push({ rule: 'labels_count', message: `output has ${classes} classes, labels has ${m.labels.length}`, expected: classes, got: m.labels.length });
    }
    const dist = m.drift_baseline?.class_distribution;
    if (dist && dist.length !== m.labels.length) {
      problems.push({ rule: 'drift_classes', message: `drift_baseline.class_distribution has ${dist.length} entries, labels has ${m.labels.length}`, expected: m.labels.length, got: dist.length });
    }
    // A golden input expecting a label the model cannot answer fails every smoke test.
    for (const [i, g] of m.golden.entries()) {
      if (!m.labels.includes(g.expected_label)) problems.push({ rule: 'golden_label_unknown', message: `golden[${i}] expects label ${JSON.stringify(g.expected_label)}, which is not one of labels` });
    }
    return problems;
  },
};

const detection: TaskRules<'detection'> = {
  check(m) {
    const problems: PackageProblem[] = [];
    const post = m.postprocessing;
    const names = m.outputs.map((o) => o.name);
    const needed = decoderOutputs(post, names);
    for (const n of needed) if (!names.includes(n)) problems.push({ rule: 'output_unknown', message: `decoder ${post.decoder.name} reads output ${n}, which is not a model output` });
    const d = post.decoder;
    if (d.name === 'yolo') {
      const shape = m.outputs.find((o) => o.name === needed[0])?.shape;
      if (shape && !yoloLayoutsFor(shape, m.labels.length).includes(d.layout)) {
        problems.push({ rule: 'decoder_shape', message: `yolo ${d.layout} does not fit output ${needed[0]} [${shape.join(',')}] with ${m.labels.length} labels (v8 is [1,4+C,N], v5 [1,N,5+C], end2end [1,K,6])` });
      }
    }
    const p = m.preprocessing;
    if (post.letterbox && (p.kind !== 'image' || p.fit !== 'contain')) problems.push({ rule: 'letterbox_fit', message: 'postprocessing.letterbox needs preprocessing.fit contain' });
    if (p.kind === 'image' && p.fit !== 'fill' && p.fit !== 'contain' && p.fit !== 'cover') problems.push({ rule: 'letterbox_fit', message: `a detector's boxes map back through fit fill, contain or cover, not ${p.fit}` });
    for (const [i, g] of m.golden.entries()) {
      if (g.expected_label !== '' && !m.labels.includes(g.expected_label)) problems.push({ rule: 'golden_label_unknown', message: `golden[${i}] expects a box labelled ${JSON.stringify(g.expected_label)}, which is not one of labels` });
    }
    return problems;
  },
};

/**
 * One entry per task of the manifest union. Adding a task to `modelManifest` without its entry
 * here does not compile. Detection checks its decoder against the declared outputs (a YOLO head
 * against the label count, boxes/scores outputs present) and the letterbox against the fit;
 * the schema bounds the NMS thresholds. See shared/package/README.md.
 */
export const TASK_RULES: { [T in ModelTask]: TaskRules<T> } = {
  classification,
  detection,
};

/** The task's own problems for a manifest of any task. */
export function taskProblems(m: ModelManifest): PackageProblem[] {
  // `m.task` picks the entry, so the cast holds by construction.
  return (TASK_RULES[m.task] as TaskRules<ModelTask>).check(m);
}
