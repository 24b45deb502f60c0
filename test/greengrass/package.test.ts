/**
 * The deployable artifact, verified the way a core device uses it: built by
 * `buildGreengrassPackage` (what `npm run package:greengrass` runs), unpacked into an empty
 * directory outside the repository, and started with the recipe's own Run command.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import AdmZip from 'adm-zip';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildGreengrassPackage, PackageError, type PackageResult } from '../../greengrass-recipes/build-package.js';
import { main as packageCli } from '../../greengrass-recipes/package.js';
import { topics } from '../../shared/topics.js';
import { fleetKeys, imagePackage, patternImage, tempDir } from '../helpers/packages.js';
import { GreengrassIpcServer } from './ipc-server.js';
import { mqttAclFromRecipe } from './recipe.js';

interface Recipe {
  ComponentVersion: string;
  Manifests: Array<{ Platform: { os: string; architecture: string }; Artifacts: Array<{ URI: string; Digest: string; Algorithm: string; Unarchive: string }>; Lifecycle: { Run: { Script: string }; Setenv?: Record<string, string> } }>;
}

let tmp: ReturnType<typeof tempDir>;
let built: PackageResult;
let recipe: Recipe;
let decompressed: string;
let modelDir: string;
let keyFile: string;
const children: ChildProcess[] = [];

/** The recipe's Run script, as the nucleus would run it, in `cwd`; resolves with the process and its `ready` line. */
async function runRecipe(cwd: string, env: Record<string, string>): Promise<{ child: ChildProcess; ready: Record<string, unknown>; stderr: () => string }> {
  const m = recipe.Manifests[0]!;
  const script = m.Lifecycle.Run.Script.replaceAll('{artifacts:decompressedPath}', decompressed);
  mkdirSync(cwd, { recursive: true });
  // Only what a nucleus gives a component: PATH for `node`, the recipe's Setenv, and the test's settings.
  const child = spawn('sh', ['-c', script], { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, ...m.Lifecycle.Setenv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line in 60 s; stderr:\n${err}`)), 60_000);
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
function stop(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode ?? String(child.signalCode));
    child.once('exit', (code, signal) => resolve(code ?? String(signal)));
    child.kill('SIGTERM');
  });
}

beforeAll(async () => {
  tmp = tempDir('edgeloop-ggpkg-');
  built = await buildGreengrassPackage({ bucket: 'edgeloop-artifacts', prefix: '/fleet/agent/', archs: ['x86_64'], outDir: join(tmp.dir, 'out') });
  recipe = parse(readFileSync(built.recipe, 'utf8')) as Recipe;
  // An empty place with no repository above it: the zip must carry everything it needs.
  const device = join(tmpdir(), `edgeloop-core-device-${process.pid}-${Date.now()}`);
  expect(device.startsWith(join(process.cwd(), sep))).toBe(false);
  decompressed = join(device, 'artifacts-unarchived', 'com.edgeloop.Agent', built.version);
  const zipCopy = join(device, 'artifacts', 'edgeloop-agent-x86_64.zip');
  mkdirSync(dirname(zipCopy), { recursive: true });
  copyFileSync(built.artifacts[0]!.zip, zipCopy);
  // Greengrass unarchives <name>.zip into {artifacts:decompressedPath}/<name>/.
  new AdmZip(zipCopy).extractAllTo(join(decompressed, 'edgeloop-agent-x86_64'), true);
  modelDir = join(device, 'initial-model');
  await imagePackage(modelDir, { version: '1.0.0' });
  keyFile = join(device, 'fleet.pub.pem');
  writeFileSync(keyFile, fleetKeys().publicKeyPem);
  cleanupDevice = device;
}, 180_000);

let cleanupDevice = '';
afterAll(async () => {
  await Promise.all(children.map((c) => stop(c)));
  tmp?.cleanup();
  if (cleanupDevice) rmSync(cleanupDevice, { recursive: true, force: true });
});

describe('npm run package:greengrass (x86_64)', () => {
  it('writes the recipe with the S3 URI and the SHA-256 digest of the zip, and only the manifest it built', () => {
    const a = built.artifacts[0]!;
    const zipBytes = readFileSync(a.zip);
    expect(recipe.ComponentVersion).toBe(built.version);
    expect(recipe.Manifests).toHaveLength(1);
    const m = recipe.Manifests[0]!;
    expect(m.Platform).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(m.Artifacts[0]).toMatchObject({
      URI: `s3://edgeloop-artifacts/fleet/agent/${built.version}/edgeloop-agent-x86_64.zip`,
      Digest: createHash('sha256').update(zipBytes).digest('base64'),
      Algorithm: 'SHA-256',
      Unarchive: 'ZIP',
    });
    expect(a.sha256).toBe(createHash('sha256').update(zipBytes).digest('hex'));
    const names = new AdmZip(a.zip).getEntries().map((e) => e.entryName);
    expect(names).toEqual(expect.arrayContaining(['main.js', 'worker.js', 'drain-thread.js', 'package.json', 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node', 'node_modules/better-sqlite3/build/Release/better_sqlite3.node', 'node_modules/aws-crt/dist/bin/linux-x64-glibc/aws-crt-nodejs.node']));
    expect(names.some((n) => n.startsWith('node_modules/@img/sharp-linux-x64/'))).toBe(true);
    expect(names.some((n) => n.startsWith('node_modules/@img/sharp-libvips-linux-x64/'))).toBe(true);
    // Pruned to the target: no other platform's binaries, no build-time packages.
    expect(names.filter((n) => /darwin|win32|linux\/arm64|linux-arm64|prebuild-install/.test(n))).toEqual([]);
    // The recipe's access control names only this device's topics.
    expect(mqttAclFromRecipe('thing-1', built.recipe).publish.every((t) => t.startsWith('edgeloop/v1/devices/thing-1/'))).toBe(true);
  });

  it('starts from the unpacked zip with the recipe Run command (plain mode), serves /healthz and infers on a test image', async () => {
    expect(existsSync(join(tmpdir(), 'node_modules'))).toBe(false);
    const work = join(dirname(decompressed), '..', '..', 'work-plain');
    const { child, ready, stderr } = await runRecipe(work, {
      EDGELOOP_AGENT_HTTP__PORT: '0',
      EDGELOOP_AGENT_MODELS__INITIAL: modelDir,
      EDGELOOP_AGENT_FLEET_PUBLIC_KEY: keyFile,
      EDGELOOP_AGENT_INFERENCE__WARMUP_RUNS: '1',
      EDGELOOP_AGENT_LOG__LEVEL: 'warn',
    });
    expect(ready).toMatchObject({ event: 'ready', model: { name: 'pets', version: '1.0.0' } });
    const url = String(ready.http);
    const health = (await (await fetch(`${url}/healthz`)).json()) as { ok: boolean; agent_version: string; model: { version: string } };
    expect(health).toMatchObject({ ok: true, agent_version: built.version, model: { version: '1.0.0' } });
    const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(7) });
    expect(res.status).toBe(200);
    const r = (await res.json()) as { type: string; label: string; model_version: string; topk: unknown[] };
    expect(r).toMatchObject({ type: 'infer_result', model_version: '1.0.0' });
    expect(['cat', 'dog', 'bird', 'fish']).toContain(r.label);
    expect(await stop(child), stderr().slice(-3000)).toBe(0);
    expect(existsSync(join(work, '.data', 'agent', 'queue.db'))).toBe(true);
  });

  it('starts in Greengrass mode from the same zip: the bundled SDK and aws-crt talk IPC to the nucleus', async () => {
    const work = join(dirname(decompressed), '..', '..', 'work-gg');
    mkdirSync(work, { recursive: true });
    const ipc = await GreengrassIpcServer.start({
      socketPath: join(work, '..', 'ipc.socket'),
      svcuid: 'pkg-svcuid',
      componentName: 'com.edgeloop.Agent',
      mqttAcl: mqttAclFromRecipe('pkg-thing', built.recipe),
      configuration: { agent: { http: { port: 0 }, models: { initial: modelDir }, fleet_public_key: keyFile, inference: { warmup_runs: 0 }, log: { level: 'warn' } } },
    });
    try {
      const { child, ready, stderr } = await runRecipe(work, { SVCUID: 'pkg-svcuid', AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: ipc.socketPath, AWS_IOT_THING_NAME: 'pkg-thing' });
      expect(ready).toMatchObject({ event: 'ready', mode: 'greengrass', device_id: 'pkg-thing', data_dir: join(work, 'data'), model: { version: '1.0.0' } });
      const end = Date.now() + 10_000;
      while (!(ipc.states.includes('RUNNING') && ipc.published.some((p) => p.topic === topics.status('pkg-thing'))) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(ipc.states).toContain('RUNNING');
      expect(ipc.published.some((p) => p.topic === topics.status('pkg-thing') && p.retain)).toBe(true);
      const code = await stop(child);
      expect(code, stderr().slice(-3000)).toBe(0);
    } finally {
      await ipc.close();
    }
  });

  it('refuses to build aarch64 without the arm64 native packages, naming them (this machine has x64 ones only)', async () => {
    const err = await buildGreengrassPackage({ bucket: 'edgeloop-artifacts', prefix: 'p', archs: ['aarch64'], outDir: join(tmp.dir, 'arm') }).then(
      () => null,
      (e: unknown) => e as PackageError,
    );
    expect(err).toBeInstanceOf(PackageError);
    // Either the sharp arm64 packages are missing, or (if installed) the x64 better-sqlite3 build is caught by its ELF machine.
    expect(err!.message).toMatch(/@img\/sharp-linux-arm64|better_sqlite3\.node \(ELF machine 0x3e\)/);
    console.info(`[greengrass] aarch64 build here: ${err!.message}`);
  });

  it('the CLI answers --help and refuses a missing --bucket with usage', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) };
    expect(await packageCli(['--help'], io)).toBe(0);
    expect(out.join('\n')).toContain('--bucket BUCKET --prefix PREFIX');
    expect(await packageCli(['--prefix', 'p'], io)).toBe(2);
    expect(err.join('\n')).toContain('--bucket and --prefix are required');
  });
});
