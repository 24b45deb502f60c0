import { EdgeloopError, sharedError } from '../errors.js';

/**
 * Every rule a model package can break, with the code a refusal carries. A file whose bytes
 * differ from its manifest entry is `MODEL_HASH_MISMATCH` (tampering or a broken transfer);
 * everything else is `MODEL_PACKAGE_INVALID`. The rule names are stable: tests and logs match
 * on them, and `details.problems` of a refusal lists them.
 */
export const PACKAGE_RULES = {
  /** manifest.json is absent or cannot be read. */
  manifest_unreadable: 'MODEL_PACKAGE_INVALID',
  /** manifest.json is not a JSON object. */
  manifest_json: 'MODEL_PACKAGE_INVALID',
  /** The manifest does not match the schema (shared/schemas/manifest.ts); `field` names the key. */
  schema: 'MODEL_PACKAGE_INVALID',
  file_listed_twice: 'MODEL_PACKAGE_INVALID',
  model_file_unlisted: 'MODEL_PACKAGE_INVALID',
  /** The agent runs single-input models. */
  input_count: 'MODEL_PACKAGE_INVALID',
  /** The input shape does not fit the preprocessing, or has symbolic dims after the batch dim. */
  input_shape: 'MODEL_PACKAGE_INVALID',
  input_dtype: 'MODEL_PACKAGE_INVALID',
  /** The postprocessing reads an output the model does not declare. */
  output_unknown: 'MODEL_PACKAGE_INVALID',
  /** The output's class dim differs from the number of labels. */
  labels_count: 'MODEL_PACKAGE_INVALID',
  /** Detection: the decoder does not fit its output's shape (a YOLO head's class dim against labels, a layout the shape cannot be). */
  decoder_shape: 'MODEL_PACKAGE_INVALID',
  /** Detection: a letterbox without `preprocessing.fit: contain`, or an image detector whose fit is not fill, contain or cover. */
  letterbox_fit: 'MODEL_PACKAGE_INVALID',
  golden_input_missing: 'MODEL_PACKAGE_INVALID',
  golden_file_unlisted: 'MODEL_PACKAGE_INVALID',
  golden_file_not_image: 'MODEL_PACKAGE_INVALID',
  golden_tensor_size: 'MODEL_PACKAGE_INVALID',
  golden_label_unknown: 'MODEL_PACKAGE_INVALID',
  drift_classes: 'MODEL_PACKAGE_INVALID',
  drift_histogram: 'MODEL_PACKAGE_INVALID',
  lineage_self_parent: 'MODEL_PACKAGE_INVALID',
  /** The manifest declares an input or output the ONNX graph does not have. */
  model_io_unknown: 'MODEL_PACKAGE_INVALID',
  /** The model file does not parse as an ONNX model (a hash-correct file of another kind). */
  model_not_onnx: 'MODEL_PACKAGE_INVALID',
  file_missing: 'MODEL_PACKAGE_INVALID',
  /** The file exists but reading it failed (permissions, I/O): named, never taken for absent. */
  file_unreadable: 'MODEL_PACKAGE_INVALID',
  file_hash_mismatch: 'MODEL_HASH_MISMATCH',
  file_size_mismatch: 'MODEL_HASH_MISMATCH',
} as const;

export type PackageRule = keyof typeof PACKAGE_RULES;
export type PackageErrorCode = (typeof PACKAGE_RULES)[PackageRule];

/** One broken rule, in words a person can act on. */
export interface PackageProblem {
  rule: PackageRule;
  message: string;
  /** The manifest key (`files.0.path`) for `schema` problems. */
  field?: string;
  /** The package file concerned. */
  file?: string;
  expected?: string | number;
  got?: string | number;
}

/**
 * The code a package with these problems is refused with: `MODEL_HASH_MISMATCH` when every
 * problem is a file differing from its entry, `MODEL_PACKAGE_INVALID` as soon as one is not
 * (whatever order the files were read in).
 */
export function packageErrorCode(problems: readonly PackageProblem[]): PackageErrorCode {
  return problems.length > 0 && problems.every((p) => PACKAGE_RULES[p.rule] === 'MODEL_HASH_MISMATCH') ? 'MODEL_HASH_MISMATCH' : 'MODEL_PACKAGE_INVALID';
}

/**
 * The refusal of a package: one error naming every problem. `details.problems` holds them with
 * their rule; `details.issues` their messages (what the registry and the agent always sent).
 */
export function packageError(where: string, problems: readonly PackageProblem[], cause?: unknown): EdgeloopError {
  const code = packageErrorCode(problems);
  const what = code === 'MODEL_HASH_MISMATCH' ? 'does not match its manifest' : 'is invalid';
  const first = problems.find((p) => p.file !== undefined && PACKAGE_RULES[p.rule] === 'MODEL_HASH_MISMATCH');
  return sharedError(code, `model package ${where} ${what}: ${problems.map((p) => p.message).join('; ')}`, {
    ...(cause === undefined ? {} : { cause }),
    details: {
      problems: problems.map((p) => ({ ...p })),
      issues: problems.map((p) => p.message),
      // The single-file fields a hash refusal always carried.
      ...(first ? { file: first.file, expected: first.expected, got: first.got } : {}),
    },
  });
}

/** The problems a package refusal lists, or null when `err` is not one. */
export function packageProblems(err: unknown): PackageProblem[] | null {
  if (!(err instanceof EdgeloopError) || (err.code !== 'MODEL_PACKAGE_INVALID' && err.code !== 'MODEL_HASH_MISMATCH')) return null;
  const problems = err.details?.problems;
  return Array.isArray(problems) ? (problems as PackageProblem[]) : null;
}
