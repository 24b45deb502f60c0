/**
 * The deployable x86_64 artifact, verified the way a core device uses it: built by
 * `buildGreengrassPackage` (what `npm run package:greengrass` runs), unpacked as the nucleus
 * does into an empty directory outside the repository whose path has a space in it, and run
 * with the recipe's own Install and Run scripts. The zip carries its Node.js: nothing here
 * uses the Node that runs the tests.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackageError, buildGreengrassPackage } from '../../greengrass-recipes/build-package.js';
import { GLIBC_FLOOR } from '../../greengrass-recipes/elf.js';
import { BUNDLED_NODE } from '../../greengrass-recipes/node-runtimes.js';
import { main as packageCli } from '../../greengrass-recipes/package.js';
import { topics } from '../../shared/topics.js';
import { waitUntil } from '../helpers/wait.js';
import { GreengrassIpcServer } from './ipc-server.js';
import { BUILD_TIMEOUT_MS, componentEnv, coreDevice, expectZipFor, lifecycleScript, runToEnd, startRun, stop, type BuiltZip, type CoreDevice } from './packaged.js';
import { mqttAclFromRecipe } from './recipe.js';

let d: CoreDevice;
let built: BuiltZip;
let device: string;
let decompressed: string;
let agentDir: string;
let fixture: CoreDevice['fixture'];

beforeAll(async () => {
  d = await coreDevice('x86_64');
  ({ built, dir: device, decompressed, agentDir, fixture } = d);
  expect(device.startsWith(join(process.cwd(), sep))).toBe(false);
}, BUILD_TIMEOUT_MS);

afterAll(() => d?.close());

describe('npm run package:greengrass (x86_64)', () => {
  it('writes the recipe with the S3 URI and the SHA-256 digest of the zip, and only the manifest it built', () => {
    const a = built.artifact;
    const zipBytes = readFileSync(a.zip);
    expect(built.recipe.ComponentVersion).toBe(built.version);
    expect(built.recipe.Manifests).toHaveLength(1);
    const m = built.recipe.Manifests[0]!;
    expect(m.Platform).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(m.Artifacts[0]).toMatchObject({
      URI: `s3://edgeloop-artifacts/fleet/agent/${built.version}/edgeloop-agent-x86_64.zip`,
      Digest: createHash('sha256').update(zipBytes).digest('base64'),
      Algorithm: 'SHA-256',
      Unarchive: 'ZIP',
      // The nucleus sets these modes on the unarchived files: the bundled node must be executable.
      Permission: { Read: 'OWNER', Execute: 'OWNER' },
    });
    expect(a.sha256).toBe(createHash('sha256').update(zipBytes).digest('hex'));
    // The recipe's access control names only this device's topics.
    expect(mqttAclFromRecipe('thing-1', built.recipeFile).publish.every((t) => t.startsWith('edgeloop/v1/devices/thing-1/'))).toBe(true);
  });

  it('carries its own Node.js and native modules built for it, for x86-64 only, pruned, needing no newer glibc than the floor', () => {
    expectZipFor(built, agentDir, 'x64');
  });

  it("the recipe's Install step checks the platform and the bundled Node's modules, and passes here", async () => {
    const work = join(device, 'work install');
    mkdirSync(work, { recursive: true });
    const r = await runToEnd('sh', ['-c', lifecycleScript(built, 'Install', decompressed)], { cwd: work, env: componentEnv(built, work) });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`runtime   Node ${BUNDLED_NODE.version} linux-x64, NODE_MODULE_VERSION ${BUNDLED_NODE.modules}`);
    expect(r.out).toMatch(/ok +better-sqlite3 +SQLite 3\./);
    expect(r.out).toMatch(/ok +onnxruntime-node/);
    expect(r.out).toMatch(/ok +sharp +libvips/);
    expect(r.out).toMatch(/ok +aws-crt/);
    expect(r.out).toContain(`check-platform: ok: x86_64, glibc`);
  });

  it('the Install step refuses another CPU, an old glibc, and a bundled node that is not executable, naming why', async () => {
    const fakes = join(device, 'fake bin');
    mkdirSync(fakes, { recursive: true });
    const fake = (name: string, body: string): void => writeFileSync(join(fakes, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    const install = lifecycleScript(built, 'Install', decompressed);
    const env = (): Record<string, string> => ({ ...componentEnv(built, device), PATH: `${fakes}:/usr/bin:/bin` });

    fake('uname', 'echo armv7l');
    let r = await runToEnd('sh', ['-c', install], { env: env() });
    expect(r.code).toBe(1);
    expect(r.err).toContain('this is the x86_64 build of com.edgeloop.Agent and this device is armv7l');

    rmSync(join(fakes, 'uname'));
    fake('getconf', 'echo "glibc 2.27"');
    r = await runToEnd('sh', ['-c', install], { env: env() });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`glibc 2.27 is older than ${GLIBC_FLOOR.GLIBC}`);

    rmSync(join(fakes, 'getconf'));
    const node = join(agentDir, 'node', 'bin', 'node');
    chmodSync(node, 0o400);
    try {
      r = await runToEnd('sh', ['-c', install], { env: env() });
      expect(r.code).toBe(1);
      expect(r.err).toContain('is not executable: the recipe\'s artifact needs Permission Execute: OWNER');
    } finally {
      chmodSync(node, 0o500);
    }
  });

  it('infers from the unpacked zip with the bundled Node: the right label and score for each colour', async () => {
    const r = await runToEnd(join(agentDir, 'node', 'bin', 'node'), [join(agentDir, 'main.js'), 'infer', '--model', fixture.modelDir, '--public-key', fixture.keyFile, '--json', ...fixture.images.map((i) => i.file)], {
      cwd: device,
      env: componentEnv(built, device),
    });
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as { label: string; score: number; latency_ms: number; model_version: string });
    expect(lines).toHaveLength(fixture.images.length);
    lines.forEach((l, i) => {
      expect(l.label).toBe(fixture.images[i]!.label);
      expect(l.score).toBeCloseTo(fixture.images[i]!.score, 4);
      expect(l.model_version).toBe('1.0.0');
    });
    console.info(`[greengrass] x86_64 infer: ${lines.map((l) => `${l.latency_ms.toFixed(2)} ms`).join(', ')} per image; the whole command ${r.ms.toFixed(0)} ms`);
  });

  it('runs with the recipe Run command (plain mode) on the bundled Node: serves /healthz, infers, captures into its SQLite queue, stops on SIGTERM', async () => {
    expect(existsSync(join(tmpdir(), 'node_modules'))).toBe(false);
    const work = join(device, 'work plain');
    const { child, ready, stderr } = await startRun(
      lifecycleScript(built, 'Run', decompressed),
      work,
      componentEnv(built, work, {
        EDGELOOP_AGENT_HTTP__PORT: '0',
        EDGELOOP_AGENT_MODELS__INITIAL: fixture.modelDir,
        EDGELOOP_AGENT_FLEET_PUBLIC_KEY: fixture.keyFile,
        EDGELOOP_AGENT_INFERENCE__WARMUP_RUNS: '1',
        EDGELOOP_AGENT_LOG__LEVEL: 'warn',
      }),
    );
    d.children.push(child);
    // `exec` in the Run script: the component's process is the bundled node itself.
    expect(readlinkSync(`/proc/${child.pid}/exe`)).toBe(join(agentDir, 'node', 'bin', 'node'));
    expect(ready).toMatchObject({ event: 'ready', model: { name: 'colours', version: '1.0.0' } });
    const url = String(ready.http);
    const health = (await (await fetch(`${url}/healthz`)).json()) as { ok: boolean; agent_version: string; model: { version: string } };
    expect(health).toMatchObject({ ok: true, agent_version: built.version, model: { version: '1.0.0' } });
    const img = fixture.images[2]!;
    const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: readFileSync(img.file) });
    expect(res.status).toBe(200);
    const r = (await res.json()) as { label: string; score: number; outlier: { reasons: string[] } };
    expect(r.label).toBe(img.label);
    expect(r.score).toBeCloseTo(img.score, 4);
    // Its top score is below the default 0.6: a low-confidence outlier, kept in the queue.
    expect(r.outlier.reasons).toContain('low_confidence');
    await waitUntil(async () => ((await (await fetch(`${url}/healthz`)).json()) as { queue: { depth: number } }).queue.depth >= 1, 10_000, 'the outlier in the queue');
    expect(await stop(child), stderr().slice(-3000)).toBe(0);
    // The sample is in the SQLite file after the agent is gone: read with the bundled node's own CLI.
    const stats = await runToEnd(join(agentDir, 'node', 'bin', 'node'), [join(agentDir, 'main.js'), 'queue', 'stats', '--data', join(work, '.data', 'agent'), '--json'], { env: componentEnv(built, work) });
    expect(stats.code, stats.err).toBe(0);
    expect((JSON.parse(stats.out) as { depth: number }).depth).toBe(1);
  });

  it('starts in Greengrass mode from the same zip: the bundled SDK and aws-crt talk IPC to the nucleus', async () => {
    const work = join(device, 'work gg');
    mkdirSync(work, { recursive: true });
    const ipc = await GreengrassIpcServer.start({
      socketPath: join(device, 'ipc.socket'),
      svcuid: 'pkg-svcuid',
      componentName: 'com.edgeloop.Agent',
      mqttAcl: mqttAclFromRecipe('pkg-thing', built.recipeFile),
      configuration: { agent: { http: { port: 0 }, models: { initial: fixture.modelDir }, fleet_public_key: fixture.keyFile, inference: { warmup_runs: 0 }, log: { level: 'warn' } } },
    });
    try {
      const { child, ready, stderr } = await startRun(lifecycleScript(built, 'Run', decompressed), work, componentEnv(built, work, { SVCUID: 'pkg-svcuid', AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: ipc.socketPath, AWS_IOT_THING_NAME: 'pkg-thing' }));
      d.children.push(child);
      expect(ready).toMatchObject({ event: 'ready', mode: 'greengrass', device_id: 'pkg-thing', data_dir: join(work, 'data'), model: { version: '1.0.0' } });
      await waitUntil(() => ipc.states.includes('RUNNING') && ipc.published.some((p) => p.topic === topics.status('pkg-thing')), 10_000, 'RUNNING and a status publish');
      expect(ipc.published.some((p) => p.topic === topics.status('pkg-thing') && p.retain)).toBe(true);
      expect(await stop(child), stderr().slice(-3000)).toBe(0);
    } finally {
      await ipc.close();
    }
  });

  it('refuses a bucket name S3 would refuse, before building anything', async () => {
    const err = await buildGreengrassPackage({ bucket: 'Not_A_Bucket', prefix: 'p', archs: ['x86_64'], outDir: join(device, 'never'), cacheDir: join(device, 'never-cache') }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PackageError);
    expect((err as Error).message).toContain('--bucket Not_A_Bucket is not a valid S3 bucket name');
    expect(existsSync(join(device, 'never-cache'))).toBe(false);
  });

  it('the CLI answers --help and refuses a missing --bucket with usage', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) };
    expect(await packageCli(['--help'], io)).toBe(0);
    expect(out.join('\n')).toContain('--bucket BUCKET --prefix PREFIX');
    expect(out.join('\n')).toContain(`${BUNDLED_NODE.version} (${BUNDLED_NODE.lts} LTS`);
    expect(await packageCli(['--prefix', 'p'], io)).toBe(2);
    expect(err.join('\n')).toContain('--bucket and --prefix are required');
  });
});
