/**
 * The aarch64 artifact, built on this x86_64 machine (better-sqlite3 cross-compiled with
 * Debian's aarch64-linux-gnu toolchain, sharp's and ONNX Runtime's arm64 binaries, the arm64
 * Node.js from npm) and run as a device would run it, under user-mode emulation:
 * `qemu-aarch64-static -L /usr/aarch64-linux-gnu` (Debian's qemu-user-static and
 * libc6-arm64-cross) in front of the bundled node. No aarch64 hardware ran this.
 *
 * The Install step's CPU and glibc checks need an aarch64 shell (`uname -m` says x86_64 here
 * and there is no binfmt handler), so this file runs that step's last part, the bundled node's
 * `main.js check`, under emulation; the checks themselves are tested on the x86_64 zip.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_NODE } from '../../greengrass-recipes/node-runtimes.js';
import { missingBinary } from '../helpers/optional-binary.js';
import { waitUntil } from '../helpers/wait.js';
import { ARM64_SYSROOT, BUILD_TIMEOUT_MS, componentEnv, coreDevice, expectZipFor, lifecycleScript, QEMU, runToEnd, startRun, stop, underEmulation, type BuiltZip, type CoreDevice } from './packaged.js';

const skip = missingBinary(QEMU, 'the aarch64 zip runs under qemu-user (Debian qemu-user-static)') ?? missingBinary(join(ARM64_SYSROOT, 'lib', 'ld-linux-aarch64.so.1'), 'qemu loads the arm64 Node with the arm64 glibc (Debian libc6-arm64-cross)');

let d: CoreDevice;
let built: BuiltZip;
let device: string;
let decompressed: string;
let agentDir: string;
let fixture: CoreDevice['fixture'];
/**
 * Emulation is slow, and slower on a loaded host: `check` takes 12 s on this 2-core machine
 * when quiet and over a minute when both cores are saturated by other jobs.
 */
const EMULATED_TIMEOUT_MS = 300_000;
/** The bundled arm64 node, emulated. */
const emulated = (args: string[], env: Record<string, string>, timeoutMs = EMULATED_TIMEOUT_MS - 10_000): ReturnType<typeof runToEnd> => runToEnd(QEMU, ['-L', ARM64_SYSROOT, join(agentDir, 'node', 'bin', 'node'), ...args], { env, timeoutMs });

describe.skipIf(skip)('npm run package:greengrass (aarch64), run under qemu-aarch64', () => {
  beforeAll(async () => {
    d = await coreDevice('aarch64');
    ({ built, dir: device, decompressed, agentDir, fixture } = d);
  }, BUILD_TIMEOUT_MS);

  afterAll(() => d?.close());

  it('builds here: the recipe has the aarch64 manifest, and every binary in the zip is AArch64 and needs no newer glibc than the floor', () => {
    const m = built.recipe.Manifests;
    expect(m).toHaveLength(1);
    expect(m[0]!.Platform).toEqual({ os: 'linux', architecture: 'aarch64' });
    expect(m[0]!.Artifacts[0]!.URI).toBe(`s3://edgeloop-artifacts/fleet/agent/${built.version}/edgeloop-agent-aarch64.zip`);
    expectZipFor(built, agentDir, 'arm64');
  });

  it("the bundled arm64 Node loads every native module (the Install step's check)", async () => {
    const r = await emulated([join(agentDir, 'main.js'), 'check'], componentEnv(built, device));
    expect(r.code, `${r.out}\n${r.err}`).toBe(0);
    expect(r.out).toContain(`runtime   Node ${BUNDLED_NODE.version} linux-arm64, NODE_MODULE_VERSION ${BUNDLED_NODE.modules}`);
    for (const m of ['better-sqlite3', 'onnxruntime-node', 'sharp', 'aws-crt']) expect(r.out).toMatch(new RegExp(`ok +${m}`));
  }, EMULATED_TIMEOUT_MS);

  it('infers under emulation: the right label and score for each colour', async () => {
    const r = await emulated([join(agentDir, 'main.js'), 'infer', '--model', fixture.modelDir, '--public-key', fixture.keyFile, '--json', ...fixture.images.map((i) => i.file)], componentEnv(built, device));
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as { label: string; score: number; latency_ms: number });
    expect(lines).toHaveLength(fixture.images.length);
    lines.forEach((l, i) => {
      expect(l.label).toBe(fixture.images[i]!.label);
      expect(l.score).toBeCloseTo(fixture.images[i]!.score, 4);
    });
    console.info(`[greengrass] aarch64 infer under qemu: ${lines.map((l) => `${l.latency_ms.toFixed(2)} ms`).join(', ')} per image; the whole command ${r.ms.toFixed(0)} ms`);
  }, EMULATED_TIMEOUT_MS);

  it('runs with the recipe Run command under emulation: /healthz, an inference, the outlier in its SQLite queue, a clean stop', async () => {
    const work = join(device, 'work plain');
    const { child, ready, stderr } = await startRun(
      underEmulation(lifecycleScript(built, 'Run', decompressed)),
      work,
      componentEnv(built, work, {
        EDGELOOP_AGENT_HTTP__PORT: '0',
        EDGELOOP_AGENT_MODELS__INITIAL: fixture.modelDir,
        EDGELOOP_AGENT_FLEET_PUBLIC_KEY: fixture.keyFile,
        EDGELOOP_AGENT_INFERENCE__WARMUP_RUNS: '0',
        EDGELOOP_AGENT_LOG__LEVEL: 'warn',
      }),
      EMULATED_TIMEOUT_MS - 30_000,
    );
    d.children.push(child);
    expect(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0')).toContain(join(agentDir, 'node', 'bin', 'node'));
    expect(ready).toMatchObject({ event: 'ready', model: { name: 'colours', version: '1.0.0' } });
    const url = String(ready.http);
    expect(await (await fetch(`${url}/healthz`)).json()).toMatchObject({ ok: true, agent_version: built.version });
    const img = fixture.images[0]!;
    const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: readFileSync(img.file) });
    expect(res.status).toBe(200);
    const r = (await res.json()) as { label: string; score: number };
    expect(r.label).toBe(img.label);
    expect(r.score).toBeCloseTo(img.score, 4);
    await waitUntil(async () => ((await (await fetch(`${url}/healthz`)).json()) as { queue: { depth: number } }).queue.depth >= 1, 30_000, 'the outlier in the queue');
    expect(await stop(child), stderr().slice(-3000)).toBe(0);
  }, EMULATED_TIMEOUT_MS);
});
