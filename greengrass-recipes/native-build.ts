/**
 * better-sqlite3 compiled for one Node.js runtime and CPU. Unlike the other native modules of
 * the agent (ONNX Runtime, sharp, aws-crt: N-API, one binary for every Node version),
 * better-sqlite3 is built against V8's ABI: its `.node` loads only in a Node with the same
 * NODE_MODULE_VERSION. So the zip carries one built against the headers of the Node it
 * carries, and the tests build one per Node line they run.
 *
 * Built with node-gyp from the sources in node_modules/better-sqlite3 (the npm package ships
 * them, SQLite amalgamation included), with `--nodedir` at the runtime's headers; aarch64 with
 * Debian's cross toolchain (aarch64-linux-gnu-gcc). glibc-compat/ keeps the result loadable
 * on glibc 2.28 (see glibc-compat.h). Cached per better-sqlite3 version, Node version and CPU.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cachedDir } from './cache.js';
import { elfMachine, ELF_MACHINE, glibcFloorViolations } from './elf.js';
import type { NodeCpu, NodeRuntimePin } from './node-runtimes.js';

const run = promisify(execFile);
const HERE = import.meta.dirname;
const COMPAT_DIR = join(HERE, 'glibc-compat');

export class NativeBuildError extends Error {
  override name = 'NativeBuildError';
}

/** The C toolchain per target CPU, and the Debian package that provides it. */
export const TOOLCHAIN: Record<NodeCpu, { prefix: string; debian: string[] }> = {
  x64: { prefix: '', debian: ['g++', 'make', 'python3'] },
  arm64: { prefix: 'aarch64-linux-gnu-', debian: ['g++-aarch64-linux-gnu', 'make', 'python3'] },
};

/** Which of the tools a build for `cpu` needs are missing from PATH (with the Debian packages to install). */
async function missingToolchain(cpu: NodeCpu): Promise<string | null> {
  const { prefix, debian } = TOOLCHAIN[cpu];
  const missing: string[] = [];
  for (const tool of [`${prefix}gcc`, `${prefix}g++`, `${prefix}strip`, 'make', 'python3']) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      missing.push(tool);
    }
  }
  return missing.length ? `${missing.join(', ')} not found (Debian: apt-get install ${debian.join(' ')})` : null;
}

export interface SqliteBuildOptions {
  /** The repository (its node_modules has better-sqlite3's sources and node-gyp). */
  root: string;
  runtime: NodeRuntimePin;
  cpu: NodeCpu;
  /** The runtime's unpacked package: `include/node` is the `--nodedir` headers. */
  nodeDir: string;
  cacheDir: string;
  onProgress?: (step: string) => void;
}

/** A shell word: the compiler flags below pass through make and sh. */
const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** Path of `better_sqlite3.node` built for the runtime and CPU (stripped), from the cache when built before. */
export async function buildBetterSqlite3(o: SqliteBuildOptions): Promise<string> {
  const progress = o.onProgress ?? (() => undefined);
  const pkgDir = join(o.root, 'node_modules', 'better-sqlite3');
  const gyp = join(o.root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!existsSync(join(pkgDir, 'binding.gyp'))) throw new NativeBuildError(`better-sqlite3's sources are not in ${pkgDir} (run npm ci)`);
  if (!existsSync(gyp)) throw new NativeBuildError(`node-gyp is not installed in ${o.root}/node_modules (a dev dependency: run npm ci)`);
  const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  // The shim is part of the build: a change to it builds anew.
  const shim = createHash('sha256')
    .update(readFileSync(join(COMPAT_DIR, 'glibc-compat.h')))
    .update(readFileSync(join(COMPAT_DIR, 'glibc-compat.c')))
    .digest('hex')
    .slice(0, 12);
  const key = `better-sqlite3-${version}-node-${o.runtime.version}-linux-${o.cpu}-${shim}`;
  const { dir, hit } = await cachedDir(
    join(o.cacheDir, 'native', key),
    async (tmp) => {
      const missing = await missingToolchain(o.cpu);
      if (missing) throw new NativeBuildError(`cannot build better-sqlite3 for linux ${o.cpu}: ${missing}`);
      const { prefix } = TOOLCHAIN[o.cpu];
      const src = join(tmp, 'src');
      for (const part of ['binding.gyp', 'src', 'deps', 'package.json']) cpSync(join(pkgDir, part), join(src, part), { recursive: true });
      const compatObj = join(tmp, 'glibc-compat.o');
      const include = `-include ${q(join(COMPAT_DIR, 'glibc-compat.h'))}`;
      await run(`${prefix}gcc`, ['-O2', '-fPIC', '-include', join(COMPAT_DIR, 'glibc-compat.h'), '-c', join(COMPAT_DIR, 'glibc-compat.c'), '-o', compatObj]);
      progress(`compiling better-sqlite3 ${version} for Node ${o.runtime.version} (NODE_MODULE_VERSION ${o.runtime.modules}) linux-${o.cpu}: a few minutes, once`);
      const started = Date.now();
      // npm passes its configuration to scripts as npm_config_* variables, and node-gyp lets
      // those override its command line: Debian's npm sets nodedir=/usr (the system Node's
      // headers), which would build for the wrong ABI. The build gets none of them.
      const env = {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k))),
        CC: `${prefix}gcc`,
        CXX: `${prefix}g++`,
        LINK: `${prefix}g++`,
        AR: `${prefix}ar`,
        CFLAGS: include,
        CXXFLAGS: include,
        LDFLAGS: q(compatObj),
      };
      try {
        await run(process.execPath, [gyp, 'rebuild', '--release', `--nodedir=${o.nodeDir}`, `--arch=${o.cpu}`, `-j`, String(availableParallelism())], { cwd: src, env, maxBuffer: 256 * 1024 * 1024 });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new NativeBuildError(`node-gyp failed building better-sqlite3 for linux-${o.cpu}:\n${`${e.stdout ?? ''}\n${e.stderr ?? ''}`.trim().slice(-4000)}`, { cause: err });
      }
      const out = join(tmp, 'better_sqlite3.node');
      copyFileSync(join(src, 'build', 'Release', 'better_sqlite3.node'), out);
      // Debug symbols are a third of the file; nothing on a device reads them.
      await run(`${prefix}strip`, ['--strip-unneeded', out]);
      // A V8-ABI addon exports node_register_module_v<NODE_MODULE_VERSION>.
      if (!readFileSync(out).includes(`node_register_module_v${o.runtime.modules}`)) throw new NativeBuildError(`better_sqlite3.node was not built for NODE_MODULE_VERSION ${o.runtime.modules} (node-gyp used other headers than ${o.nodeDir})`);
      const machine = elfMachine(out);
      if (machine !== ELF_MACHINE[o.cpu]) throw new NativeBuildError(`better_sqlite3.node came out for ELF machine ${machine}, not linux-${o.cpu}`);
      const over = glibcFloorViolations(out);
      if (over.length) throw new NativeBuildError(`better_sqlite3.node needs ${over.join(', ')}, above the zip's floor; extend greengrass-recipes/glibc-compat`);
      progress(`better-sqlite3 for linux-${o.cpu} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      // Only the addon stays in the cache, not the build tree.
      rmSync(src, { recursive: true, force: true });
      rmSync(compatObj, { force: true });
    },
    { onWait: () => progress(`waiting for another build of better-sqlite3 for linux-${o.cpu}`) },
  );
  if (hit) progress(`better-sqlite3 for Node ${o.runtime.version} linux-${o.cpu}: cached`);
  return join(dir, 'better_sqlite3.node');
}
