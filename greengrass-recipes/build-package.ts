/**
 * Build the Greengrass artifact of the agent: one bundled JS entry (esbuild) plus the native
 * modules for the target platform, zipped, and the recipe with artifact URIs and digests.
 *
 * Layout of the zip (Greengrass unarchives it into `{artifacts:decompressedPath}/<zip name>/`):
 *   main.js, worker.js,     the agent CLI, the inference worker and the queue drain worker
 *   drain-thread.js         (ESM bundles)
 *   package.json            `type: module`, name and version
 *   node_modules/           only the packages with native code, pruned to the target:
 *     onnxruntime-node (+ onnxruntime-common)   bin/napi-v6/linux/<x64|arm64>
 *     better-sqlite3 (+ bindings, file-uri-to-path)   build/Release/better_sqlite3.node
 *     sharp (+ @img/colour, detect-libc, semver, @img/sharp-linux-<arch>, @img/sharp-libvips-linux-<arch>)
 *     aws-crt                                    dist/bin/linux-<x64|arm64>-glibc (its native build needs no npm deps)
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import AdmZip from 'adm-zip';
import { build, type Plugin } from 'esbuild';
import { parseDocument } from 'yaml';

export type Arch = 'x86_64' | 'aarch64';
const NODE_ARCH: Record<Arch, 'x64' | 'arm64'> = { x86_64: 'x64', aarch64: 'arm64' };
/** ELF e_machine values: what a `.node`/`.so` file was built for. */
const ELF_MACHINE: Record<Arch, number> = { x86_64: 0x3e, aarch64: 0xb7 };

export interface PackageOptions {
  bucket: string;
  prefix: string;
  archs: Arch[];
  outDir: string;
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

const HERE = dirname(new URL(import.meta.url).pathname);
const ZIP_NAME = (arch: Arch): string => `edgeloop-agent-${arch}`;
/** Packages whose code loads native binaries: kept out of the bundle and copied, pruned. */
const NATIVE = ['onnxruntime-node', 'better-sqlite3', 'sharp', 'aws-crt'];

/** What of each package goes into the zip (paths relative to the package), per target. */
function keepRules(arch: Arch): Record<string, (rel: string) => boolean> {
  const a = NODE_ARCH[arch];
  return {
    'onnxruntime-node': (r) => r === 'package.json' || r.startsWith('dist/') || r.startsWith(`bin/napi-v6/linux/${a}/`) || r === 'LICENSE',
    'onnxruntime-common': (r) => r === 'package.json' || r.startsWith('dist/cjs/') || r.startsWith('dist/esm/') || r === 'LICENSE',
    'better-sqlite3': (r) => r === 'package.json' || r.startsWith('lib/') || r === 'build/Release/better_sqlite3.node' || r === 'LICENSE',
    sharp: (r) => r === 'package.json' || r.startsWith('lib/') || r === 'LICENSE',
    'aws-crt': (r) => r === 'package.json' || (r.startsWith('dist/') && !r.startsWith('dist/bin/')) || r.startsWith(`dist/bin/linux-${a}-glibc/`) || r === 'LICENSE',
  };
}

/** Runtime dependencies of the native packages (install-time ones, such as prebuild-install, stay out). */
function closure(arch: Arch): string[] {
  const a = NODE_ARCH[arch];
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
    `@img/sharp-linux-${a}`,
    `@img/sharp-libvips-linux-${a}`,
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

/** ELF machine of a binary, or null when the file is not ELF. */
function elfMachine(file: string): number | null {
  const b = readFileSync(file);
  if (b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) return null;
  return b[5] === 1 ? b.readUInt16LE(18) : b.readUInt16BE(18);
}

/** The bundled agent reads its version from here instead of a package.json two levels up. */
function versionPlugin(version: string): Plugin {
  return {
    name: 'edgeloop-version',
    setup(b) {
      b.onLoad({ filter: /agent[\\/]version\.ts$/ }, () => ({ contents: `export const AGENT_VERSION = ${JSON.stringify(version)};`, loader: 'ts' }));
    },
  };
}

async function bundle(root: string, stage: string, version: string): Promise<void> {
  await build({
    absWorkingDir: root,
    entryPoints: { main: join(root, 'agent/cli/entry.ts'), worker: join(root, 'agent/inference/worker.ts'), 'drain-thread': join(root, 'agent/uplink/drain-thread.ts') },
    outdir: stage,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: NATIVE,
    // CommonJS dependencies inside an ESM bundle still call require() and read __dirname.
    banner: { js: "import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);" },
    plugins: [versionPlugin(version)],
    logLevel: 'silent',
    legalComments: 'none',
  });
}

function copyNative(root: string, stage: string, arch: Arch): string[] {
  const rules = keepRules(arch);
  const missing: string[] = [];
  const copied: string[] = [];
  for (const name of closure(arch)) {
    // Looked up on disk, not with require.resolve: several of these packages' `exports` hide package.json.
    const pkgDir = join(root, 'node_modules', name);
    if (!existsSync(join(pkgDir, 'package.json'))) {
      missing.push(name);
      continue;
    }
    const keep = rules[name] ?? (() => true);
    const dest = join(stage, 'node_modules', name);
    for (const rel of walk(pkgDir)) {
      if (rel.startsWith('node_modules/') || !keep(rel)) continue;
      mkdirSync(dirname(join(dest, rel)), { recursive: true });
      cpSync(join(pkgDir, rel), join(dest, rel));
      copied.push(join('node_modules', name, rel));
    }
  }
  if (missing.length) throw new PackageError(`native packages for linux ${arch} are not installed: ${missing.join(', ')}`, missing);
  return copied;
}

/** Every native binary in the stage must be built for the target (a wrong-arch .node fails only on the device). */
function checkBinaries(stage: string, arch: Arch): void {
  const wrong: string[] = [];
  for (const rel of walk(stage)) {
    if (!/\.node$|\.so(\.\d+)*$/.test(rel)) continue;
    const m = elfMachine(join(stage, rel));
    if (m !== ELF_MACHINE[arch]) wrong.push(`${rel} (ELF machine ${m === null ? 'none' : `0x${m.toString(16)}`})`);
  }
  if (wrong.length) throw new PackageError(`binaries not built for linux ${arch}: ${wrong.join(', ')}`, wrong);
  for (const need of [`node_modules/better-sqlite3/build/Release/better_sqlite3.node`, `node_modules/onnxruntime-node/bin/napi-v6/linux/${NODE_ARCH[arch]}/onnxruntime_binding.node`]) {
    if (!existsSync(join(stage, need))) throw new PackageError(`missing ${need}`, [need]);
  }
}

const s3Uri = (bucket: string, prefix: string, version: string, file: string): string => `s3://${bucket}/${[prefix.replace(/^\/+|\/+$/g, ''), version, file].filter(Boolean).join('/')}`;

/** Fill the recipe template: version, and for each built arch its URI and digest; manifests of archs not built are dropped. */
export function fillRecipe(template: string, version: string, artifacts: BuiltArtifact[]): string {
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

export async function buildGreengrassPackage(o: PackageOptions): Promise<PackageResult> {
  const root = o.root ?? resolve(HERE, '..');
  const version = o.version ?? (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new PackageError(`component version must be major.minor.patch, got ${version}`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(o.bucket)) throw new PackageError(`--bucket ${o.bucket} is not a valid S3 bucket name`);
  const progress = o.onProgress ?? (() => undefined);
  mkdirSync(o.outDir, { recursive: true });
  const artifacts: BuiltArtifact[] = [];
  for (const arch of o.archs) {
    const stage = join(o.outDir, 'stage', ZIP_NAME(arch));
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(stage, { recursive: true });
    // Native modules first: a missing or wrong-arch binary fails before the slower bundling.
    progress(`${arch}: copying native modules for linux ${NODE_ARCH[arch]}`);
    copyNative(root, stage, arch);
    checkBinaries(stage, arch);
    progress(`${arch}: bundling the agent with esbuild`);
    await bundle(root, stage, version);
    writeFileSync(join(stage, 'package.json'), `${JSON.stringify({ name: 'edgeloop-agent', version, type: 'module', private: true }, null, 2)}\n`);
    progress(`${arch}: writing the zip`);
    const zip = new AdmZip();
    const files = walk(stage);
    for (const rel of files) zip.addLocalFile(join(stage, rel), dirname(rel) === '.' ? '' : dirname(rel));
    const zipPath = join(o.outDir, `${ZIP_NAME(arch)}.zip`);
    zip.writeZip(zipPath);
    const bytes = readFileSync(zipPath);
    const h = sha256(bytes);
    artifacts.push({ arch, zip: zipPath, uri: s3Uri(o.bucket, o.prefix, version, `${ZIP_NAME(arch)}.zip`), sha256: h.toString('hex'), digest: h.toString('base64'), bytes: statSync(zipPath).size, files: files.length });
    rmSync(stage, { recursive: true, force: true });
  }
  rmSync(join(o.outDir, 'stage'), { recursive: true, force: true });
  const recipe = join(o.outDir, `com.edgeloop.Agent-${version}.recipe.yaml`);
  writeFileSync(recipe, fillRecipe(readFileSync(join(HERE, 'com.edgeloop.Agent.recipe.yaml'), 'utf8'), version, artifacts));
  progress(`recipe written: ${recipe}`);
  return { version, recipe, artifacts };
}
