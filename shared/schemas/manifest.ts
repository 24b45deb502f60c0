import { z } from 'zod';
import { dim, dtype, idString, isoTime, modelName, modelRef, outlierReason, semver, sha256Hex, type OutlierReason } from './common.js';

export const MANIFEST_SCHEMA = 'edgeloop.model-manifest' as const;

const tensorSpec = z.object({ name: z.string().min(1), dtype, shape: z.array(dim).min(1) });
export type TensorSpec = z.infer<typeof tensorSpec>;

/**
 * Why `path` cannot name a file inside a package, or null when it can. A package path is
 * relative, `/`-separated and canonical: no leading `/` or drive letter, no backslash (a
 * separator on Windows, so `..\x` would escape there), no `.`, `..` or empty segment (`a//b`
 * and `./a` would alias `a` and slip past the duplicate check), no NUL.
 */
export function unsafePackagePath(path: string): string | null {
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'is absolute';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.includes('\0')) return 'contains a NUL byte';
  const segments = path.split('/');
  if (segments.includes('..')) return "has a '..' segment";
  if (segments.some((s) => s === '' || s === '.')) return "has an empty or '.' segment";
  return null;
}

export const packageFile = z.object({
  path: z
    .string()
    .min(1)
    .superRefine((p, ctx) => {
      const why = unsafePackagePath(p);
      if (why) ctx.addIssue({ code: 'custom', message: `file paths stay inside the package: ${JSON.stringify(p)} ${why}` });
    }),
  sha256: sha256Hex,
  bytes: z.number().int().nonnegative(),
  role: z.enum(['model', 'labels', 'golden', 'other']).default('other'),
});
export type PackageFile = z.infer<typeof packageFile>;

/** Image preprocessing the agent builds with sharp. Values are applied as ((px * scale) - mean) / std per channel. */
export const imagePreprocessing = z.object({
  kind: z.literal('image'),
  width: z.number().int().positive().max(8192),
  height: z.number().int().positive().max(8192),
  /** sharp's fit modes; `fill` stretches, `cover` crops, `contain` letterboxes. */
  fit: z.enum(['fill', 'cover', 'contain', 'inside', 'outside']).default('fill'),
  color: z.enum(['rgb', 'grayscale']).default('rgb'),
  layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
  dtype: dtype.default('float32'),
  scale: z.number().positive().default(1 / 255),
  mean: z.array(z.number()).min(1).max(3).default([0]),
  std: z.array(z.number().positive()).min(1).max(3).default([1]),
  /** Invert intensities (white digits on black, as MNIST) after scaling to [0,1]. */
  invert: z.boolean().default(false),
});
export type ImagePreprocessing = z.infer<typeof imagePreprocessing>;

export const tensorPreprocessing = z.object({ kind: z.literal('tensor') });

export const preprocessing = z.discriminatedUnion('kind', [imagePreprocessing, tensorPreprocessing]);
export type Preprocessing = z.infer<typeof preprocessing>;

/**
 * Postprocessing of a `classification` package: what shared/inference/postprocess.ts
 * `classify` takes. `kind` repeats the task (older packages carry it; the literal keeps the
 * two from disagreeing).
 */
export const classificationPostprocessing = z.object({
  kind: z.literal('classification').default('classification'),
  /** Output tensor holding the scores; defaults to the first output. */
  output: z.string().optional(),
  /** The model emits logits: the agent applies softmax before scoring. */
  softmax: z.boolean().default(false),
  top_k: z.number().int().positive().max(100).default(5),
});
export type ClassificationPostprocessing = z.infer<typeof classificationPostprocessing>;

const rateLimit = z.object({ per_minute: z.number().nonnegative().describe('Samples kept per minute for this reason.'), burst: z.number().int().positive().default(10).describe('How many may be kept at once before the rate applies.') });

/** Priority per reason when neither manifest nor device config says otherwise (higher drains first, evicted last). */
export const OUTLIER_DEFAULT_PRIORITIES: Readonly<Record<OutlierReason, number>> = {
  shadow_disagreement: 7,
  low_confidence: 6,
  low_margin: 5,
  high_entropy: 5,
  drift: 4,
  random: 2,
};

/** Built-in per-reason rate limits (per minute, burst): a flood of bad frames cannot fill the queue in minutes. */
export const OUTLIER_DEFAULT_RATE_LIMITS: Readonly<Record<OutlierReason, { per_minute: number; burst: number }>> = {
  shadow_disagreement: { per_minute: 60, burst: 20 },
  low_confidence: { per_minute: 120, burst: 30 },
  low_margin: { per_minute: 60, burst: 20 },
  high_entropy: { per_minute: 60, burst: 20 },
  drift: { per_minute: 30, burst: 10 },
  random: { per_minute: 30, burst: 5 },
};

/** The policy of a manifest that sets none (and of each key it leaves out). */
const OUTLIER_DEFAULTS = { min_confidence: 0.6, min_margin: 0.15, max_entropy: 0.7, random_sample_rate: 0.01 } as const;

const builtInLimits = Object.entries(OUTLIER_DEFAULT_RATE_LIMITS)
  .map(([r, l]) => `\`${r}\` ${l.per_minute}/min, burst ${l.burst}`)
  .join('; ');
const builtInPriorities = Object.entries(OUTLIER_DEFAULT_PRIORITIES)
  .map(([r, p]) => `\`${r}\` ${p}`)
  .join(', ');
const unset = (v: number): string => ` A manifest that does not set it: \`${v}\`.`;

/** Outlier capture policy; the manifest gives defaults, device config overrides key by key. */
export const outlierPolicy = z.object({
  min_confidence: z
    .number()
    .min(0)
    .max(1)
    .default(OUTLIER_DEFAULTS.min_confidence)
    .describe(`A prediction whose top score is below this is an outlier (reason \`low_confidence\`); 0 captures none, 1 nearly all.${unset(OUTLIER_DEFAULTS.min_confidence)}`),
  min_margin: z
    .number()
    .min(0)
    .max(1)
    .default(OUTLIER_DEFAULTS.min_margin)
    .describe(`A prediction whose top two scores are closer than this is an outlier (reason \`low_margin\`); 0 captures none.${unset(OUTLIER_DEFAULTS.min_margin)}`),
  max_entropy: z
    .number()
    .min(0)
    .max(1)
    .default(OUTLIER_DEFAULTS.max_entropy)
    .describe(`A prediction whose normalised entropy (0..1, divided by ln(classes)) is above this is an outlier (reason \`high_entropy\`); 1 captures none.${unset(OUTLIER_DEFAULTS.max_entropy)}`),
  random_sample_rate: z
    .number()
    .min(0)
    .max(1)
    .default(OUTLIER_DEFAULTS.random_sample_rate)
    .describe(`Fraction of normal traffic kept anyway (reason \`random\`), for unbiased monitoring; 0 keeps none. Rate-limited like every reason (built in: ${OUTLIER_DEFAULT_RATE_LIMITS.random.per_minute}/min, burst ${OUTLIER_DEFAULT_RATE_LIMITS.random.burst}).${unset(OUTLIER_DEFAULTS.random_sample_rate)}`),
  drift_psi: z
    .number()
    .positive()
    .nullable()
    .default(null)
    .describe(
      "While the drift monitor's input PSI (brightness or contrast, over its window) is above this, every frame also matches reason `drift` (rate-limited like any reason): the drifted inputs the model is confidently wrong about come back too, not only the uncertain ones. The predicted-class PSI does not count (a class-prior shift is not an input drift). null (the default) turns it off; the demo's digit models ship 0.5.",
    ),
  rate_limits: z
    .partialRecord(outlierReason, rateLimit)
    .default({})
    .describe(`Rate limit per reason (\`<key>\` is the reason, a token bucket per reason); a reason without one keeps its built-in limit: ${builtInLimits}.`),
  priorities: z
    .partialRecord(outlierReason, z.number().int().min(0).max(9))
    .default({})
    .describe(`Queue priority per reason (higher drains first, evicted last); a reason without one keeps its built-in priority: ${builtInPriorities}.`),
});
export type OutlierPolicy = z.infer<typeof outlierPolicy>;

const histogram = z.object({
  /** Bin edges, ascending, length = freqs.length + 1. */
  edges: z.array(z.number()).min(2),
  freqs: z.array(z.number().nonnegative()).min(1),
});
export type Histogram = z.infer<typeof histogram>;

export const driftBaseline = z.object({
  /** Expected share of each predicted class, indexed like `labels`. */
  class_distribution: z.array(z.number().nonnegative()).optional(),
  brightness: histogram.optional(),
  contrast: histogram.optional(),
  /** Number of recent predictions the running distribution covers. */
  window: z.number().int().positive().default(500),
});
export type DriftBaseline = z.infer<typeof driftBaseline>;

export const goldenInput = z.object({
  /** An image file in the package, preprocessed like live input... */
  file: z.string().optional(),
  /** ...or a raw tensor (flattened) for tensor models. */
  tensor: z.array(z.number()).optional(),
  expected_label: z.string(),
  /** Minimum top-1 score expected; guards against a model that is right by luck. */
  min_score: z.number().min(0).max(1).default(0),
});
export type GoldenInput = z.infer<typeof goldenInput>;

export const lineage = z.object({
  dataset_version: idString.optional(),
  training_run: idString.optional(),
  parent: modelRef.optional(),
  trainer: z.string().optional(),
  code_version: z.string().optional(),
});

export const signature = z.object({
  alg: z.literal('ed25519'),
  /** sha256 of the public key (SPKI DER), so a device can tell which key signed. */
  key_id: sha256Hex,
  /** base64 signature over canonicalJson(manifest without `signature`). */
  value: z.string().min(1),
});
export type ManifestSignature = z.infer<typeof signature>;

/**
 * Fields every package has, whatever its task, in manifest order around `task` and
 * `postprocessing` (kept in the order they always had, so a parsed manifest serialises as
 * before).
 */
const headFields = {
  schema: z.literal(MANIFEST_SCHEMA),
  v: z.literal(1),
  name: modelName,
  version: semver,
};
const middleFields = {
  description: z.string().optional(),
  created_at: isoTime,
  /** The main ONNX file (one of `files`). */
  model_file: z.string().min(1),
  files: z.array(packageFile).min(1),
  inputs: z.array(tensorSpec).min(1),
  outputs: z.array(tensorSpec).min(1),
  preprocessing,
};
const tailFields = {
  labels: z.array(z.string()).min(2),
  outlier: outlierPolicy.default(outlierPolicy.parse({})),
  drift_baseline: driftBaseline.optional(),
  golden: z.array(goldenInput).default([]),
  latency_budget_ms: z.number().positive().optional(),
  lineage: lineage.optional(),
  evaluation: z.record(z.string(), z.unknown()).optional(),
  signature: signature.optional(),
};

/**
 * An image or tensor classifier: scores per class, `labels` in output order. `task` may be
 * absent (every package before tasks existed is a classifier), so old manifests parse, and
 * verify, byte for byte as before: the signature covers the raw JSON, never the defaults.
 */
export const classificationManifest = z.object({
  ...headFields,
  task: z.literal('classification').default('classification'),
  ...middleFields,
  postprocessing: classificationPostprocessing.default({ kind: 'classification', softmax: false, top_k: 5 }),
  ...tailFields,
});

/** The tasks this version reads, one per member of {@link modelManifest}. */
export const MODEL_TASKS = ['classification'] as const;

/**
 * The model package manifest: one member per `task`, each with its own `postprocessing`
 * block. A new task (detection: `postprocessing: { kind: 'detection', decoder: { name: 'yolo'
 * | 'boxes-scores' | 'heatmap', ... }, nms: { iou, score, max_detections }, letterbox }`; see
 * shared/package/README.md) is one more member here plus its entry in the task rule table
 * (shared/package/tasks.ts); readers of the common fields do not change.
 */
export const modelManifest = z.discriminatedUnion('task', [classificationManifest], {
  error: (iss) => (iss.code === 'invalid_union' ? `unknown task ${JSON.stringify((iss.input as { task?: unknown } | undefined)?.task)}: this version reads ${MODEL_TASKS.join(', ')}` : undefined),
});
export type ModelManifest = z.infer<typeof modelManifest>;
/** What a manifest looks like before defaults are applied (what tools write). */
export type ModelManifestInput = z.input<typeof modelManifest>;
/** The tasks a package may name. */
export type ModelTask = ModelManifest['task'];
/** The postprocessing block of any task. */
export type Postprocessing = ModelManifest['postprocessing'];
