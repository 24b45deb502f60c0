/**
 * Build the Greengrass artifact of the agent, one self-contained zip per CPU: the Node.js
 * runtime it runs on, the agent bundled into a few JS files, and the native modules built for
 * exactly that runtime and CPU; and the recipe with artifact URIs and digests. A core device
 * needs nothing beyond glibc (and the libstdc++ every glibc distribution has): GLIBC_FLOOR in
 * elf.ts, checked on every binary of the zip and again by the component's install step.
 *
 * Layout of the zip (Greengrass unarchives it into `{artifacts:decompressedPath}/<zip name>/`):
 *   node/bin/node, node/LICENSE   the official Node.js binary (BUNDLED_NODE), debug symbols stripped
 *   main.js, worker.js,           the agent CLI, the inference worker and the queue drain worker
 *   drain-thread.js               (ESM bundles for that Node; the version and runtime are baked in)
 *   check-platform.sh             the recipe's Install step: CPU, glibc, then `main.js check`
 *   package.json                  `type: module`, name and version
 *   node_modules/                 only the packages with native code, pruned to the target:
 *     onnxruntime-node (+ onnxruntime-common)   bin/napi-v6/linux/<x64|arm64>, the CPU provider only
 *     better-sqlite3 (+ bindings, file-uri-to-path)   build/Release/better_sqlite3.node, compiled
 *                                               here for the bundled Node (native-build.ts)
 *     sharp (+ @img/colour, detect-libc, semver, @img/sharp-linux-<cpu>, @img/sharp-libvips-linux-<cpu>)
 *     aws-crt                                    dist/bin/linux-<x64|arm64>-glibc (its native build needs no npm deps)
 *
 * Everything fetched or compiled is cached (cache.ts): a warm build only bundles and zips.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import AdmZip from 'adm-zip';
import { build, type Plugin } from 'esbuild';
import { parseDocument } from 'yaml';
import type { BuiltRuntime } from '../agent/built-for.js';
import { cachedDir } from './cache.js';
import { elfMachine, ELF_MACHINE, GLIBC_FLOOR, glibcFloorViolations, highestNeeds, mergeNeeds } from './elf.js';
import { buildBetterSqlite3, NativeBuildError, TOOLCHAIN } from './native-build.js';
import { BUNDLED_NODE, fetchNode, type NodeCpu, type NodeRuntimePin } from './node-runtimes.js';
import { FetchError, fetchPackage } from './npm-fetch.js';

const run = promisify(execFile);

export type Arch = 'x86_64' | 'aarch64';
const NODE_ARCH: Record<Arch, NodeCpu> = { x86_64: 'x64', aarch64: 'arm64' };

export interface PackageOptions {
  bucket: string;
  prefix: string;
  archs: Arch[];
  outDir: string;
  /** Where fetched runtimes and compiled modules are kept between builds (cache.ts: defaultCacheDir). */
  cacheDir: string;
  /** Component version; defaults to package.json's. */
  version?: string;
  /** The repository (where package.json and node_modules are). */
  root?: string;
  onProgress?: (step: string) => void;
}

export interface BuiltArtifact {
  arch: Arch;
  zip: string;
  uri: string;
  sha256: string;
  /** base64 of the SHA-256, the form a recipe's `Digest` takes. */
  digest: string;
  bytes: number;
  files: number;
  /** The Node.js runtime in the zip. */
  node: string;
  /** The highest library versions the zip's binaries need. */
  needs: Record<string, string>;
  /** Wall time of this arch's build, including fetches and compiles the cache did not have. */
  seconds: number;
}

export interface PackageResult {
  version: string;
  recipe: string;
  artifacts: BuiltArtifact[];
}

export class PackageError extends Error {
  constructor(
    message: string,
    readonly missing: string[] = [],
  ) {
    super(message);
    this.name = 'PackageError';
  }
}

const HERE = import.meta.dirname;
const ZIP_NAME = (arch: Arch): string => `edgeloop-agent-${arch}`;
/** Packages whose code loads native binaries: kept out of the bundle and copied, pruned. */
const NATIVE = ['onnxruntime-node', 'better-sqlite3', 'sharp', 'aws-crt'];
/** Type declarations, source maps and docs: nothing on a device reads them. */
const NOT_AT_RUNTIME = /\.d\.[cm]?ts$|\.map$|(^|\/)(README|CHANGELOG|HISTORY)(\.md)?$|\.md$/i;

/** What of each package goes into the zip (paths relative to the package), per target. */
function keepRules(cpu: NodeCpu): Record<string, (rel: string) => boolean> {
  return {
    // The CPU execution provider is in libonnxruntime itself; CUDA/TensorRT provider libraries (if an install fetched them) stay out.
    'onnxruntime-node': (r) => r === 'package.json' || r.startsWith('dist/') || (r.startsWith(`bin/napi-v6/linux/${cpu}/`) && !r.includes('providers_')) || r === 'LICENSE',
    'onnxruntime-common': (r) => r === 'package.json' || r.startsWith('dist/cjs/') || r.startsWith('dist/esm/') || r === 'LICENSE',
    // Its build/ comes from native-build.ts, compiled for the bundled Node.
    'better-sqlite3': (r) => r === 'package.json' || r.startsWith('lib/') || r === 'LICENSE',
    sharp: (r) => r === 'package.json' || r.startsWith('lib/') || r === 'LICENSE',
    'aws-crt': (r) => r === 'package.json' || (r.startsWith('dist/') && !r.startsWith('dist/bin/')) || r.startsWith(`dist/bin/linux-${cpu}-glibc/`) || r === 'LICENSE',
  };
}

/** Runtime dependencies of the native packages (install-time ones, such as prebuild-install, stay out). */
function closure(cpu: NodeCpu): string[] {
  return [
    'onnxruntime-node',
    'onnxruntime-common',
    'better-sqlite3',
    'bindings',
    'file-uri-to-path',
    'sharp',
    '@img/colour',
    'detect-libc',
    'semver',
    `@img/sharp-linux-${cpu}`,
    `@img/sharp-libvips-linux-${cpu}`,
    'aws-crt',
  ];
}

function walk(dir: string, base = dir, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, base, out);
    else if (e.isFile()) out.push(relative(base, p));
  }
  return out;
}

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** The bundled agent reads its version and its runtime from here instead of package.json and node_modules. */
function bakePlugin(version: string, builtFor: BuiltRuntime): Plugin {
  return {
    name: 'edgeloop-bake',
    setup(b) {
      b.onLoad({ filter: /agent[\\/]version\.ts$/ }, () => ({ contents: `export const AGENT_VERSION = ${JSON.stringify(version)};`, loader: 'ts' }));
      b.onLoad({ filter: /agent[\\/]built-for\.ts$/ }, () => ({ contents: `export const BUILT_FOR = ${JSON.stringify(builtFor)};`, loader: 'ts' }));
    },
  };
}

async function bundle(root: string, stage: string, version: string, builtFor: BuiltRuntime): Promise<void> {
  await build({
    absWorkingDir: root,
    entryPoints: { main: join(root, 'agent/cli/entry.ts'), worker: join(root, 'agent/inference/worker.ts'), 'drain-thread': join(root, 'agent/uplink/drain-thread.ts') },
    outdir: stage,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${builtFor.node.split('.')[0]}`,
    external: NATIVE,
    // CommonJS dependencies inside an ESM bundle still call require() and read __dirname.
    banner: { js: "import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);" },
    plugins: [bakePlugin(version, builtFor)],
    logLevel: 'silent',
    legalComments: 'none',
  });
}

/** sharp's packages for the target CPU: from node_modules when npm installed them (a build on that CPU), else fetched at the versions and integrities package-lock.json pins. */
async function sharpPackages(root: string, cpu: NodeCpu, cacheDir: string, progress: (s: string) => void): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> };
  const wanted = (JSON.parse(readFileSync(join(root, 'node_modules', 'sharp', 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> }).optionalDependencies;
  for (const name of [`@img/sharp-linux-${cpu}`, `@img/sharp-libvips-linux-${cpu}`]) {
    const installed = join(root, 'node_modules', name);
    if (existsSync(join(installed, 'package.json'))) {
      out[name] = installed;
      continue;
    }
    const pin = lock.packages[`node_modules/${name}`];
    if (!pin?.version || !pin.integrity || pin.version !== wanted[name]) throw new PackageError(`${name}@${wanted[name]} (sharp's package for linux-${cpu}) is not pinned in package-lock.json`, [name]);
    out[name] = await fetchPackage({ name, version: pin.version, integrity: pin.integrity }, cacheDir, progress);
  }
  return out;
}

function copyNative(root: string, stage: string, cpu: NodeCpu, from: Record<string, string>): void {
  const rules = keepRules(cpu);
  const missing: string[] = [];
  for (const name of closure(cpu)) {
    // Looked up on disk, not with require.resolve: several of these packages' `exports` hide package.json.
    const pkgDir = from[name] ?? join(root, 'node_modules', name);
    if (!existsSync(join(pkgDir, 'package.json'))) {
      missing.push(name);
      continue;
    }
    const keep = rules[name] ?? (() => true);
    const dest = join(stage, 'node_modules', name);
    for (const rel of walk(pkgDir)) {
      if (rel.startsWith('node_modules/') || !keep(rel) || NOT_AT_RUNTIME.test(rel)) continue;
      mkdirSync(dirname(join(dest, rel)), { recursive: true });
      cpSync(join(pkgDir, rel), join(dest, rel));
    }
  }
  if (missing.length) throw new PackageError(`native packages for linux ${cpu} are not installed: ${missing.join(', ')}`, missing);
}

/** The runtime's binary without debug symbols (about 15% of it; nothing on a device reads them) and its licence, cached. */
async function strippedRuntime(pin: NodeRuntimePin, cpu: NodeCpu, cacheDir: string, progress: (s: string) => void): Promise<{ dir: string; nodeDir: string }> {
  const node = await fetchNode(pin, cpu, cacheDir, progress);
  const { dir } = await cachedDir(join(cacheDir, 'runtime', `node-${pin.version}-linux-${cpu}-stripped`), async (tmp) => {
    mkdirSync(join(tmp, 'bin'));
    copyFileSync(node.node, join(tmp, 'bin', 'node'));
    copyFileSync(join(node.dir, 'LICENSE'), join(tmp, 'LICENSE'));
    await run(`${TOOLCHAIN[cpu].prefix}strip`, [join(tmp, 'bin', 'node')]);
  });
  return { dir, nodeDir: node.dir };
}

/**
 * Every native binary in the stage must be built for the target (a wrong-arch `.node` fails
 * only on the device) and need nothing above the glibc floor. Returns what the zip needs.
 */
function checkBinaries(stage: string, cpu: NodeCpu): Record<string, string> {
  const wrong: string[] = [];
  const over: string[] = [];
  const needs: Array<Record<string, string>> = [];
  for (const rel of walk(stage)) {
    if (!/\.node$|\.so(\.\d+)*$|^node\/bin\/node$/.test(rel)) continue;
    const file = join(stage, rel);
    const m = elfMachine(file);
    if (m !== ELF_MACHINE[cpu]) {
      wrong.push(`${rel} (ELF machine ${m === null ? 'none' : `0x${m.toString(16)}`})`);
      continue;
    }
    const v = glibcFloorViolations(file);
    if (v.length) over.push(`${rel} (${v.join(', ')})`);
    needs.push(highestNeeds(file));
  }
  if (wrong.length) throw new PackageError(`binaries not built for linux ${cpu}: ${wrong.join(', ')}`, wrong);
  if (over.length) throw new PackageError(`binaries need more than glibc ${GLIBC_FLOOR.GLIBC} / GLIBCXX ${GLIBC_FLOOR.GLIBCXX} / CXXABI ${GLIBC_FLOOR.CXXABI}: ${over.join(', ')}`, over);
  for (const need of ['node/bin/node', 'node_modules/better-sqlite3/build/Release/better_sqlite3.node', `node_modules/onnxruntime-node/bin/napi-v6/linux/${cpu}/onnxruntime_binding.node`]) {
    if (!existsSync(join(stage, need))) throw new PackageError(`missing ${need}`, [need]);
  }
  const all = mergeNeeds(needs);
  return Object.fromEntries(Object.keys(GLIBC_FLOOR).map((k) => [k, all[k] ?? '0']));
}

/** Files that must be executable once unpacked (the nucleus sets modes from the recipe's Permission; `unzip` from the zip's). */
const EXECUTABLE = new Set(['node/bin/node', 'check-platform.sh']);
/** Every entry gets this time, so the same inputs give the same zip and digest. */
const ZIP_TIME = new Date(1980, 0, 1, 0, 0, 0);

function writeZip(stage: string, zipPath: string): number {
  const zip = new AdmZip();
  const files = walk(stage).sort();
  for (const rel of files) {
    zip.addFile(rel, readFileSync(join(stage, rel)), '', EXECUTABLE.has(rel) ? 0o755 : 0o644).header.time = ZIP_TIME;
  }
  zip.writeZip(zipPath);
  return files.length;
}

const s3Uri = (bucket: string, prefix: string, version: string, file: string): string => `s3://${bucket}/${[prefix.replace(/^\/+|\/+$/g, ''), version, file].filter(Boolean).join('/')}`;

/** Fill the recipe template: version, and for each built arch its URI and digest; manifests of archs not built are dropped. */
function fillRecipe(template: string, version: string, artifacts: BuiltArtifact[]): string {
  const doc = parseDocument(template);
  doc.set('ComponentVersion', version);
  const manifests = doc.get('Manifests') as { items: Array<{ get(k: string): unknown }> };
  const built = new Map(artifacts.map((a) => [a.arch, a]));
  manifests.items = manifests.items.filter((m) => {
    const arch = String((m.get('Platform') as { get(k: string): unknown }).get('architecture'));
    const a = built.get(arch === 'amd64' ? 'x86_64' : (arch as Arch));
    if (!a) return false;
    const art = (m.get('Artifacts') as { items: Array<{ set(k: string, v: unknown): void }> }).items[0]!;
    art.set('URI', a.uri);
    art.set('Digest', a.digest);
    return true;
  });
  doc.commentBefore = ` Generated by npm run package:greengrass from greengrass-recipes/com.edgeloop.Agent.recipe.yaml (component version ${version}).`;
  if (JSON.stringify(doc.toJS()).includes('{{')) throw new PackageError('recipe template has placeholders left after filling');
  return doc.toString();
}

async function buildArch(o: PackageOptions & { root: string; version: string; runtime: NodeRuntimePin }, arch: Arch, progress: (s: string) => void): Promise<BuiltArtifact> {
  const started = performance.now();
  const cpu = NODE_ARCH[arch];
  const stage = join(o.outDir, 'stage', ZIP_NAME(arch));
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  const say = (s: string): void => progress(`${arch}: ${s}`);
  say(`Node.js ${o.runtime.version} (${o.runtime.lts} LTS, NODE_MODULE_VERSION ${o.runtime.modules}) for linux-${cpu}`);
  const runtime = await strippedRuntime(o.runtime, cpu, o.cacheDir, say);
  const sqlite = await buildBetterSqlite3({ root: o.root, runtime: o.runtime, cpu, nodeDir: runtime.nodeDir, cacheDir: o.cacheDir, onProgress: say });
  say(`copying native modules for linux-${cpu}`);
  copyNative(o.root, stage, cpu, await sharpPackages(o.root, cpu, o.cacheDir, say));
  mkdirSync(join(stage, 'node_modules/better-sqlite3/build/Release'), { recursive: true });
  copyFileSync(sqlite, join(stage, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'));
  cpSync(runtime.dir, join(stage, 'node'), { recursive: true });
  chmodSync(join(stage, 'node/bin/node'), 0o755);
  const needs = checkBinaries(stage, cpu);
  writeFileSync(
    join(stage, 'check-platform.sh'),
    readFileSync(join(HERE, 'check-platform.sh'), 'utf8')
      .replaceAll('@ARCH@', arch)
      .replaceAll('@GLIBC@', needs.GLIBC!)
      .replaceAll('@GLIBCXX@', needs.GLIBCXX!)
      .replaceAll('@NODE@', o.runtime.version),
  );
  say('bundling the agent with esbuild');
  await bundle(o.root, stage, o.version, { node: o.runtime.version, modules: o.runtime.modules, arch: cpu, nodePath: 'node/bin/node', needs });
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify({ name: 'edgeloop-agent', version: o.version, type: 'module', private: true }, null, 2)}\n`);
  say('writing the zip');
  const zipPath = join(o.outDir, `${ZIP_NAME(arch)}.zip`);
  const files = writeZip(stage, zipPath);
  rmSync(stage, { recursive: true, force: true });
  const h = sha256(readFileSync(zipPath));
  const seconds = (performance.now() - started) / 1000;
  const bytes = statSync(zipPath).size;
  say(`${(bytes / 1e6).toFixed(1)} MB, ${files} files, ${seconds.toFixed(0)} s`);
  return { arch, zip: zipPath, uri: s3Uri(o.bucket, o.prefix, o.version, `${ZIP_NAME(arch)}.zip`), sha256: h.toString('hex'), digest: h.toString('base64'), bytes, files, node: o.runtime.version, needs, seconds };
}

export async function buildGreengrassPackage(o: PackageOptions): Promise<PackageResult> {
  const root = o.root ?? resolve(HERE, '..');
  const version = o.version ?? (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new PackageError(`component version must be major.minor.patch, got ${version}`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(o.bucket)) throw new PackageError(`--bucket ${o.bucket} is not a valid S3 bucket name`);
  const progress = o.onProgress ?? (() => undefined);
  mkdirSync(o.outDir, { recursive: true });
  const artifacts: BuiltArtifact[] = [];
  try {
    for (const arch of o.archs) artifacts.push(await buildArch({ ...o, root, version, runtime: BUNDLED_NODE }, arch, progress));
  } catch (err) {
    // A fetch or compile failure is a packaging failure with its own message (what is missing, what to install).
    if (err instanceof FetchError || err instanceof NativeBuildError) throw new PackageError(err.message);
    throw err;
  } finally {
    rmSync(join(o.outDir, 'stage'), { recursive: true, force: true });
  }
  const recipe = join(o.outDir, `com.edgeloop.Agent-${version}.recipe.yaml`);
  writeFileSync(recipe, fillRecipe(readFileSync(join(HERE, 'com.edgeloop.Agent.recipe.yaml'), 'utf8'), version, artifacts));
  progress(`recipe written: ${recipe}`);
  return { version, recipe, artifacts };
}
