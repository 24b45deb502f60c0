/**
 * The one piece of I/O in shared/: a model package directory as a {@link PackageReader}.
 *
 * The rules (rules.ts, tasks.ts, read.ts) take bytes and return problems. Reading a directory
 * lives here rather than once per side because the agent and the fleet must not read a package
 * differently (which error means "missing", how a path is joined): the registry's verdict is
 * the agent's only if both read through this function.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_FILE, readPackage, type PackageReader, type ReadPackageOptions, type VerifiedPackage } from './read.js';

/** Errors that mean "no such file" (ENOTDIR: a parent of the path is a file; EISDIR: the path is a directory). */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/**
 * A package directory. Paths come from a manifest that passed the schema (relative, no `..`,
 * no backslash: shared/schemas/manifest.ts `unsafePackagePath`), so `join` stays inside `dir`.
 */
export function directoryReader(dir: string): PackageReader {
  return {
    label: dir,
    readManifest: () => readFile(join(dir, MANIFEST_FILE)),
    readFile: (path) =>
      readFile(join(dir, path)).catch((err: unknown) => {
        if (ABSENT.has((err as NodeJS.ErrnoException).code ?? '')) return null;
        throw err;
      }),
  };
}

/** {@link readPackage} of a directory. */
export function readPackageDir(dir: string, o: ReadPackageOptions = {}): Promise<VerifiedPackage> {
  return readPackage(directoryReader(dir), o);
}
