/**
 * The packaged agent as a core device gets it, for the tests of the Greengrass zips: this
 * run's zip per CPU (built once, by whichever test file asks first, into the run's shared
 * directory; runtimes and compiled modules come from the packager's cache), unpacked the way
 * the nucleus does it, and the recipe's lifecycle scripts run the way the nucleus runs them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import AdmZip from 'adm-zip';
import sharp from 'sharp';
import { expect, inject } from 'vitest';
import { parse } from 'yaml';
import { buildGreengrassPackage, type Arch, type BuiltArtifact } from '../../greengrass-recipes/build-package.js';
import { cachedDir, defaultCacheDir } from '../../greengrass-recipes/cache.js';
import { elfMachine, ELF_MACHINE, GLIBC_FLOOR, glibcFloorViolations } from '../../greengrass-recipes/elf.js';
import { BUNDLED_NODE, type NodeCpu } from '../../greengrass-recipes/node-runtimes.js';
import { packModel } from '../../fleet/adapters/fs/pack.js';
import { channelMeanModel, COLOUR_LABELS, colourAnswer } from '../helpers/models.js';
import { fleetKeys } from '../helpers/packages.js';

/** The packager's cache, shared with `npm run package:greengrass`: warm runs fetch and compile nothing. */
export const CACHE_DIR = defaultCacheDir(process.env);
/** Cold, a zip takes minutes (Node download, better-sqlite3 compile); warm, about 10 s. */
export const BUILD_TIMEOUT_MS = 20 * 60_000;
/** Debian's emulator and the arm64 glibc it loads the bundled Node with (qemu-user-static, libc6-arm64-cross). */
export const QEMU = '/usr/bin/qemu-aarch64-static';
export const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';

export interface Recipe {
  ComponentVersion: string;
  Manifests: Array<{
    Platform: { os: string; architecture: string };
    Artifacts: Array<{ URI: string; Digest: string; Algorithm: string; Unarchive: string; Permission: { Read: string; Execute: string } }>;
    Lifecycle: { Setenv?: Record<string, string>; Install: { Script: string }; Run: { Script: string } };
  }>;
}

export interface BuiltZip {
  version: string;
  recipeFile: string;
  recipe: Recipe;
  artifact: BuiltArtifact;
}

/** This run's zip for `arch` (and its recipe, with only that manifest). */
export async function builtZip(arch: Arch): Promise<BuiltZip> {
  const dir = join(inject('runDir'), `greengrass-${arch}`);
  await cachedDir(dir, async (tmp) => {
    const r = await buildGreengrassPackage({ bucket: 'edgeloop-artifacts', prefix: '/fleet/agent/', archs: [arch], outDir: tmp, cacheDir: CACHE_DIR, onProgress: (s) => console.info(`[greengrass] ${s}`) });
    writeFileSync(join(tmp, 'result.json'), JSON.stringify({ version: r.version, recipe: basename(r.recipe), artifact: { ...r.artifacts[0]!, zip: basename(r.artifacts[0]!.zip) } }));
  });
  const r = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as { version: string; recipe: string; artifact: BuiltArtifact };
  const recipeFile = join(dir, r.recipe);
  return { version: r.version, recipeFile, recipe: parse(readFileSync(recipeFile, 'utf8')) as Recipe, artifact: { ...r.artifact, zip: join(dir, r.artifact.zip) } };
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/**
 * Unpacks the zip as the nucleus does: into `<device>/artifacts-unarchived/com.edgeloop.Agent/<version>/<zip name>/`,
 * then the recipe's `Permission` on every file (the nucleus does not keep the zip's modes).
 * Returns `{artifacts:decompressedPath}`.
 */
export function unpackAsNucleus(b: BuiltZip, device: string): string {
  const decompressed = join(device, 'artifacts-unarchived', 'com.edgeloop.Agent', b.version);
  const target = join(decompressed, basename(b.artifact.zip, '.zip'));
  new AdmZip(b.artifact.zip).extractAllTo(target, true);
  const p = b.recipe.Manifests[0]!.Artifacts[0]!.Permission;
  const mode = (p.Read === 'ALL' ? 0o444 : p.Read === 'OWNER' ? 0o400 : 0) | (p.Execute === 'ALL' ? 0o111 : p.Execute === 'OWNER' ? 0o100 : 0);
  for (const f of walk(target)) if (statSync(f).isFile()) chmodSync(f, mode);
  return decompressed;
}

/** A lifecycle step's script with `{artifacts:decompressedPath}` filled in, as the nucleus runs it (`sh -c`). */
export function lifecycleScript(b: BuiltZip, step: 'Install' | 'Run', decompressed: string): string {
  return b.recipe.Manifests[0]!.Lifecycle[step].Script.replaceAll('{artifacts:decompressedPath}', decompressed);
}

/**
 * The Run script with the emulator in front of the bundled node (`exec '<node>' ...` becomes
 * `exec qemu-aarch64-static -L <sysroot> '<node>' ...`): this machine has no binfmt handler
 * to run an arm64 binary by itself.
 */
export function underEmulation(script: string): string {
  if (!script.startsWith("exec '")) throw new Error(`the Run script does not start with exec '<node>': ${script}`);
  return `exec ${QEMU} -L ${ARM64_SYSROOT} ${script.slice('exec '.length)}`;
}

/** Only what a nucleus gives a component: PATH, the recipe's Setenv, and the test's settings. */
export function componentEnv(b: BuiltZip, cwd: string, env: Record<string, string> = {}): Record<string, string> {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: cwd, ORT_DISABLE_TELEMETRY: '1', ...b.recipe.Manifests[0]!.Lifecycle.Setenv, ...env };
}

/** Runs a command to completion: exit code, stdout, stderr. */
export function runToEnd(cmd: string, args: string[], o: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; out: string; err: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? (process.env as Record<string, string>), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => c.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', reject);
    c.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, ms: performance.now() - started });
    });
  });
}

/** Starts the Run script in `cwd` and resolves with the process and its `ready` line. */
export async function startRun(script: string, cwd: string, env: Record<string, string>, timeoutMs = 60_000): Promise<{ child: ChildProcess; ready: Record<string, unknown>; stderr: () => string }> {
  mkdirSync(cwd, { recursive: true });
  const child = spawn('sh', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line in ${timeoutMs} ms; stderr:\n${err}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code} before ready; stderr:\n${err}`));
    });
  });
  return { child, ready, stderr: () => err };
}

/** SIGTERM (as the nucleus stops a component) and wait: the exit code, or the signal name if it died of one. */
export function stop(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode ?? String(child.signalCode));
    child.once('exit', (code, signal) => resolve(code ?? String(signal)));
    child.kill('SIGTERM');
  });
}

/**
 * What every zip must hold for its CPU, checked: the runtime, the bundles, each native module
 * for that CPU only and nothing for another, better-sqlite3 for the bundled Node's ABI, every
 * binary of the right ELF machine and within the glibc floor. Returns the entry names.
 */
export function expectZipFor(b: BuiltZip, agentDir: string, cpu: NodeCpu): string[] {
  const other = cpu === 'x64' ? 'arm64' : 'x64';
  const zip = new AdmZip(b.artifact.zip);
  const names = zip.getEntries().map((e) => e.entryName);
  expect(names).toEqual(
    expect.arrayContaining([
      'node/bin/node',
      'node/LICENSE',
      'check-platform.sh',
      'main.js',
      'worker.js',
      'drain-thread.js',
      'package.json',
      `node_modules/onnxruntime-node/bin/napi-v6/linux/${cpu}/onnxruntime_binding.node`,
      `node_modules/onnxruntime-node/bin/napi-v6/linux/${cpu}/libonnxruntime.so.1`,
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      `node_modules/aws-crt/dist/bin/linux-${cpu}-glibc/aws-crt-nodejs.node`,
    ]),
  );
  expect(names.some((n) => n.startsWith(`node_modules/@img/sharp-linux-${cpu}/`))).toBe(true);
  expect(names.some((n) => n.startsWith(`node_modules/@img/sharp-libvips-linux-${cpu}/`))).toBe(true);
  // Pruned to the target: no other platform's binaries, no build-time packages, no headers, docs, type declarations or source maps.
  const stray = new RegExp(`darwin|win32|linux/${other}|linux-${other}|musl|prebuild-install|providers_(cuda|tensorrt)|^node/include/|\\.d\\.ts$|\\.map$|\\.md$`);
  expect(names.filter((n) => stray.test(n))).toEqual([]);
  // The same inputs give the same zip (and digest): fixed entry times.
  expect(new Set(zip.getEntries().map((e) => e.header.time.getFullYear()))).toEqual(new Set([1980]));
  expect(b.artifact.node).toBe(BUNDLED_NODE.version);
  expect(zip.readFile('node_modules/better-sqlite3/build/Release/better_sqlite3.node')!.includes(`node_register_module_v${BUNDLED_NODE.modules}`)).toBe(true);
  const binaries = names.filter((n) => /\.node$|\.so(\.\d+)*$|^node\/bin\/node$/.test(n));
  expect(binaries.length).toBeGreaterThanOrEqual(6);
  for (const rel of binaries) {
    const file = join(agentDir, rel);
    expect(elfMachine(file), rel).toBe(ELF_MACHINE[cpu]);
    expect(glibcFloorViolations(file), rel).toEqual([]);
  }
  expect(b.artifact.needs).toEqual(GLIBC_FLOOR);
  console.info(`[greengrass] ${b.artifact.arch} zip: ${(b.artifact.bytes / 1e6).toFixed(1)} MB, ${b.artifact.files} files, Node ${b.artifact.node}, needs ${JSON.stringify(b.artifact.needs)}`);
  return names;
}

/** A core device of one test file: the unpacked zip, the test model, the agents it started. */
export interface CoreDevice {
  built: BuiltZip;
  /** An empty directory outside the repository, with a space in its path (Greengrass roots can have one). */
  dir: string;
  /** `{artifacts:decompressedPath}` */
  decompressed: string;
  /** The unpacked zip: `<decompressed>/edgeloop-agent-<arch>`. */
  agentDir: string;
  fixture: Awaited<ReturnType<typeof colourFixture>>;
  /** Agents started by the tests; {@link CoreDevice.close} stops them. */
  children: ChildProcess[];
  close(): Promise<void>;
}

export async function coreDevice(arch: Arch): Promise<CoreDevice> {
  const built = await builtZip(arch);
  const dir = mkdtempSync(join(tmpdir(), `edgeloop core device ${arch} `));
  const decompressed = unpackAsNucleus(built, dir);
  const children: ChildProcess[] = [];
  return {
    built,
    dir,
    decompressed,
    agentDir: join(decompressed, `edgeloop-agent-${arch}`),
    fixture: await colourFixture(join(dir, 'fixture')),
    children,
    close: async () => {
      await Promise.all(children.map((c) => stop(c)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Solid-colour test images and what the colour model must answer for each. */
export const COLOURS: ReadonlyArray<{ name: string; rgb: [number, number, number] }> = [
  { name: 'rust', rgb: [200, 60, 30] },
  { name: 'moss', rgb: [40, 170, 60] },
  { name: 'sky', rgb: [30, 90, 220] },
];

/**
 * The model package a device runs in these tests: {@link channelMeanModel}, signed by the
 * fleet key, and a PNG per colour of {@link COLOURS} with its expected label and score.
 */
export async function colourFixture(dir: string): Promise<{ modelDir: string; keyFile: string; images: Array<{ file: string; label: string; score: number }> }> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'colours.onnx'), channelMeanModel().bytes);
  const modelDir = join(dir, 'model');
  await packModel({ onnxPath: join(dir, 'colours.onnx'), outDir: modelDir, labels: COLOUR_LABELS, name: 'colours', version: '1.0.0', softmax: true, signKeyPem: fleetKeys().privateKeyPem });
  const keyFile = join(dir, 'fleet.pub.pem');
  writeFileSync(keyFile, fleetKeys().publicKeyPem);
  const images = [];
  for (const c of COLOURS) {
    const file = join(dir, `${c.name}.png`);
    await sharp({ create: { width: 24, height: 20, channels: 3, background: { r: c.rgb[0], g: c.rgb[1], b: c.rgb[2] } } })
      .png()
      .toFile(file);
    images.push({ file, ...colourAnswer(c.rgb) });
  }
  return { modelDir, keyFile, images };
}
