/**
 * The failure the issue reported, now named: a packaged agent started with a Node other than
 * the one it carries (the x86_64 zip, built for Node 24, run with Node 22 from npm), and an
 * agent run from a checkout whose node_modules were installed under another Node. Both exit
 * with AGENT_RUNTIME_MISMATCH and a message that says what to do, not a dlopen stack trace.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_NODE, fetchNode, NODE_RUNTIMES, type NodeRuntimePin } from '../../greengrass-recipes/node-runtimes.js';
import { BUILD_TIMEOUT_MS, builtZip, CACHE_DIR, componentEnv, runToEnd, unpackAsNucleus, type BuiltZip } from './packaged.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let built: BuiltZip;
let device: string;
let agentDir: string;
let node22: string;

beforeAll(async () => {
  built = await builtZip('x86_64');
  node22 = (await fetchNode(NODE_RUNTIMES[22], 'x64', CACHE_DIR)).node;
  device = mkdtempSync(join(tmpdir(), 'edgeloop-node22-'));
  agentDir = join(unpackAsNucleus(built, device), 'edgeloop-agent-x86_64');
}, BUILD_TIMEOUT_MS);

afterAll(() => {
  if (device) rmSync(device, { recursive: true, force: true });
});

describe('a Node the native modules were not built for', () => {
  it('the Node 24 zip started with Node 22: run exits with AGENT_RUNTIME_MISMATCH naming both ABIs and the Node to use', async () => {
    const r = await runToEnd(node22, [join(agentDir, 'main.js'), 'run'], { cwd: device, env: componentEnv(built, device, { EDGELOOP_AGENT_HTTP__PORT: '0' }) });
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `AGENT_RUNTIME_MISMATCH: this agent was packaged with Node ${BUNDLED_NODE.version} for linux-x64, NODE_MODULE_VERSION ${BUNDLED_NODE.modules} (Node 24), and is running on Node ${NODE_RUNTIMES[22].version} linux-x64, NODE_MODULE_VERSION ${NODE_RUNTIMES[22].modules} (Node 22).`,
    );
    expect(r.err).toContain(`Start it with the Node the component carries: '${join(agentDir, 'node', 'bin', 'node')}' '${join(agentDir, 'main.js')}'`);
    // One line, not the dlopen error's stack.
    expect(r.err).not.toMatch(/^\s+at /m);
    expect(r.err).not.toContain('ERR_DLOPEN_FAILED');
  });

  it('check --json reports the mismatch without loading the modules', async () => {
    const r = await runToEnd(node22, [join(agentDir, 'main.js'), 'check', '--json'], { cwd: device, env: componentEnv(built, device) });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as { ok: boolean; running: { modules: string }; built_for: { node: string; modules: string }; mismatch: string; modules: unknown[] };
    expect(report).toMatchObject({ ok: false, running: { modules: NODE_RUNTIMES[22].modules }, built_for: { node: BUNDLED_NODE.version, modules: BUNDLED_NODE.modules } });
    expect(report.mismatch).toContain('loads only in a Node with NODE_MODULE_VERSION 137');
    expect(report.modules).toEqual([]);
  });

  it("a checkout run under another Node than the one that installed node_modules: better-sqlite3's ABI named", async () => {
    const other: NodeRuntimePin = NODE_RUNTIMES[22].modules !== process.versions.modules ? NODE_RUNTIMES[22] : NODE_RUNTIMES[24];
    const node = (await fetchNode(other, 'x64', CACHE_DIR)).node;
    const config = join(device, 'agent.json');
    writeFileSync(config, JSON.stringify({ data_dir: join(device, 'data'), http: { port: 0 } }));
    const r = await runToEnd(node, ['--import', join(ROOT, 'node_modules/tsx/dist/loader.mjs'), join(ROOT, 'agent/cli/entry.ts'), 'run', '--config', config], { cwd: device, env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } as Record<string, string> });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`AGENT_RUNTIME_MISMATCH: better-sqlite3 was built for NODE_MODULE_VERSION ${process.versions.modules}`);
    expect(r.err).toContain(`and this is Node ${other.version} with NODE_MODULE_VERSION ${other.modules}`);
    expect(r.err).toContain('npm rebuild better-sqlite3');
    expect(r.err).not.toMatch(/^\s+at /m);
  }, BUILD_TIMEOUT_MS);
});
