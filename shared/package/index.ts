/**
 * The model package module: the manifest's file name, reading, schema and rules, file hashes,
 * and one refusal (MODEL_PACKAGE_INVALID / MODEL_HASH_MISMATCH, every problem named by its
 * rule). The agent's store, the registry's push, the trainer-output check, evaluation and the
 * local trainer all read packages through it. See README.md.
 */
export { directoryReader, readPackageDir } from './dir.js';
export { PACKAGE_RULES, packageError, packageErrorCode, packageProblems } from './problems.js';
export type { PackageErrorCode, PackageProblem, PackageRule } from './problems.js';
export { checkManifest, inspectPackage, MANIFEST_FILE, openManifest, readPackage } from './read.js';
export type { PackageInspection, PackageReader, ReadPackageOptions, VerifiedPackage } from './read.js';
export { manifestProblems, modelFileProblems } from './rules.js';
export { TASK_RULES, taskProblems } from './tasks.js';
export type { TaskManifest, TaskRules } from './tasks.js';
