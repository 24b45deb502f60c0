import { z } from 'zod';
import { dim, dtype, idString, isoTime, modelName, modelRef, outlierReason, semver, sha256Hex, type OutlierReason } from './common.js';

export const MANIFEST_SCHEMA = 'edgeloop.model-manifest' as const;

const tensorSpec = z.object({
  name: z.string().min(1),
  dtype,
  /** The dims as the model declares them: sizes, or names for symbolic (dynamic) dims. */
  shape: z.array(dim).min(1),
  /**
   * The dims the agent feeds, one per `shape` entry, symbolic ones resolved at pack time (from
   * `--width`/`--height`/`--channels`/`--dim NAME=N` or defaults the model records). Absent when
   * every dim after the batch dim is fixed in the model. A symbolic batch dim stays batchable:
   * its entry here is 1, the size of one example.
   */
  dims: z.array(z.number().int().positive()).min(1).optional(),
  /**
   * `false`: the input has no batch dim, every dim is the example's (torchvision's detection
   * exports take one image `[3, H, W]`); the agent feeds one example at a time, as it is.
   * Absent: the first dim is the batch dim.
   */
  batch_dim: z.literal(false).optional(),
});
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
  /** Not an outlier: an alert rule's frame (agent/alerts/), above every outlier (the agent caps those at 8). */
  alert: 9,
  shadow_disagreement: 7,
  low_confidence: 6,
  low_margin: 5,
  high_entropy: 5,
  drift: 4,
  random: 2,
  uncertain_box: 6,
  count_change: 5,
  nothing_found: 5,
};

/** Built-in per-reason rate limits (per minute, burst): a flood of bad frames cannot fill the queue in minutes. */
export const OUTLIER_DEFAULT_RATE_LIMITS: Readonly<Record<OutlierReason, { per_minute: number; burst: number }>> = {
  /** Never matched by the outlier policy; alert rules have their own cooldowns. */
  alert: { per_minute: 60, burst: 20 },
  shadow_disagreement: { per_minute: 60, burst: 20 },
  low_confidence: { per_minute: 120, burst: 30 },
  low_margin: { per_minute: 60, burst: 20 },
  high_entropy: { per_minute: 60, burst: 20 },
  drift: { per_minute: 30, burst: 10 },
  random: { per_minute: 30, burst: 5 },
  uncertain_box: { per_minute: 120, burst: 30 },
  count_change: { per_minute: 60, burst: 20 },
  nothing_found: { per_minute: 30, burst: 10 },
};

/** The policy of a manifest that sets none (and of each key it leaves out). */
const OUTLIER_DEFAULTS = { min_confidence: 0.6, min_margin: 0.15, max_entropy: 0.7, random_sample_rate: 0.01 } as const;

const builtInLimits = Object.entries(OUTLIER_DEFAULT_RATE_LIMITS)
  .filter(([r]) => r !== 'alert')
  .map(([r, l]) => `\`${r}\` ${l.per_minute}/min, burst ${l.burst}`)
  .join('; ');
const builtInPriorities = Object.entries(OUTLIER_DEFAULT_PRIORITIES)
  .filter(([r]) => r !== 'alert')
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
    .describe(`Queue priority per reason (higher drains first, evicted last); a reason without one keeps its built-in priority: ${builtInPriorities}. The agent caps outliers at 8: alert frames (9) always come first.`),
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
  /** A detector's boxes per frame, box scores, and box sizes (sqrt of the box's share of the image's area, 0..1). */
  box_count: histogram.optional(),
  box_score: histogram.optional(),
  box_size: histogram.optional(),
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

/** A YOLO head: Ultralytics v5 `[1, N, 5+C]` (objectness), v8/v11 `[1, 4+C, N]`, or an end-to-end export `[1, K, 6]` (x1, y1, x2, y2, score, class; NMS in the graph). Boxes in input pixels. */
const yoloDecoder = z.object({
  name: z.literal('yolo'),
  layout: z.enum(['v5', 'v8', 'end2end']),
  /** The head's output; defaults to the first output. */
  output: z.string().optional(),
});
/** Separate boxes `[1, N, 4]`, scores `[1, N]` or `[1, N, C]`, optional classes `[1, N]` outputs (torchvision, SSD, TF object-detection exports). */
const boxesScoresDecoder = z.object({
  name: z.literal('boxes-scores'),
  boxes: z.string(),
  scores: z.string(),
  /** Class index per box; without it, `scores` is per class (`[1, N, C]`) or the model has one class. */
  classes: z.string().optional(),
  box_format: z.enum(['xyxy', 'yxyx']).default('xyxy'),
  /** Boxes in 0..1 of the input's width and height rather than input pixels. */
  normalized: z.boolean().default(false),
  /** Added to a class output before it indexes `labels` (-1 for TF exports whose class 1 is the first label). */
  class_offset: z.number().int().default(0),
});
/** A per-pixel probability map `[1, 1, H, W]`, `[1, H, W]` or one channel per class `[1, C, H, W]`: thresholded, one box per connected component. */
const heatmapDecoder = z.object({
  name: z.literal('heatmap'),
  output: z.string().optional(),
  threshold: z.number().gt(0).lt(1).default(0.5),
  /** Components smaller than this many map cells are noise. */
  min_area: z.number().int().positive().default(1),
  /** Grow each box by this fraction of its width and height on every side (text detectors shrink their maps). */
  expand: z.number().min(0).max(4).default(0),
  /**
   * DB-style unclip (text detectors such as PaddleOCR's, whose maps are shrunk by a distance,
   * not a fraction): every side grows by the component's area x `unclip` / its box's perimeter,
   * in map cells. Absent or 0: none. Applied before `expand`.
   */
  unclip: z.number().min(0).max(10).optional(),
});
export const detectionDecoder = z.discriminatedUnion('name', [yoloDecoder, boxesScoresDecoder, heatmapDecoder]);
export type DetectionDecoder = z.infer<typeof detectionDecoder>;

/** Postprocessing of a `detection` package: decoder, class-aware NMS, and the letterbox the boxes are mapped back through. */
export const detectionPostprocessing = z.object({
  kind: z.literal('detection').default('detection'),
  decoder: detectionDecoder,
  nms: z
    .object({
      iou_threshold: z.number().gt(0).max(1).default(0.45),
      score_threshold: z.number().gt(0).max(1).default(0.25),
      max_detections: z.number().int().positive().max(10_000).default(100),
      class_agnostic: z.boolean().default(false),
    })
    .default({ iou_threshold: 0.45, score_threshold: 0.25, max_detections: 100, class_agnostic: false }),
  /** Letterbox (aspect kept, padded): needs `preprocessing.fit: contain`. */
  letterbox: z.object({ pad_value: z.number().int().min(0).max(255).default(114) }).optional(),
  top_k: z.number().int().positive().max(100).default(5),
});
export type DetectionPostprocessing = z.infer<typeof detectionPostprocessing>;

/** Outlier policy of a detector: the classification keys plus the box-level ones. */
export const detectionOutlierPolicy = outlierPolicy.extend({
  uncertain_band: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.25, 0.5]).describe('A box whose score is inside this band is uncertain (reason `uncertain_box`).'),
  count_change: z.number().int().positive().default(3).describe('A frame whose box count differs from the running mean by at least this many is kept (reason `count_change`).'),
  usually_finds: z.number().min(0).max(1).default(0.8).describe('When at least this share of recent frames had a box, a frame with none is kept (reason `nothing_found`).'),
  history: z.number().int().positive().max(10_000).default(50).describe('Frames the running count and found-share cover.'),
});
export type DetectionOutlierPolicy = z.infer<typeof detectionOutlierPolicy>;
export type DetectionOutlierPolicyInput = z.input<typeof detectionOutlierPolicy>;

/**
 * An object detector: boxes with labels and scores. Labels may be a single class. Golden
 * inputs are not checked by label for a detector (their `expected_label` is not used).
 */
export const detectionManifest = z.object({
  ...headFields,
  task: z.literal('detection'),
  ...middleFields,
  postprocessing: detectionPostprocessing,
  ...tailFields,
  labels: z.array(z.string()).min(1),
  outlier: detectionOutlierPolicy.default(detectionOutlierPolicy.parse({})),
});

/** The tasks this version reads, one per member of {@link modelManifest}. */
export const MODEL_TASKS = ['classification', 'detection'] as const;

/**
 * The model package manifest: one member per `task`, each with its own `postprocessing`
 * block. A new task is one more member here plus its entry in the task rule table
 * (shared/package/tasks.ts); readers of the common fields do not change.
 */
export const modelManifest = z.discriminatedUnion('task', [classificationManifest, detectionManifest], {
  error: (iss) => (iss.code === 'invalid_union' ? `unknown task ${JSON.stringify((iss.input as { task?: unknown } | undefined)?.task)}: this version reads ${MODEL_TASKS.join(', ')}` : undefined),
});
export type ModelManifest = z.infer<typeof modelManifest>;
/** What a manifest looks like before defaults are applied (what tools write). */
export type ModelManifestInput = z.input<typeof modelManifest>;
/** The tasks a package may name. */
export type ModelTask = ModelManifest['task'];
/** The postprocessing block of any task. */
export type Postprocessing = ModelManifest['postprocessing'];
