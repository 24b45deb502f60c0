/**
 * The agent's runtime check (agent/runtime-check.ts): which Node a packaged agent needs, and
 * what a native module's load failure means, in words a device operator can act on. The
 * failures are the loader's own messages, captured from real runs (a better-sqlite3 built for
 * Node 24 loaded by Node 20, an arm64 addon on x86-64, a glibc 2.36 build on an older glibc).
 */
import { describe, expect, it } from 'vitest';
import type { BuiltRuntime } from '../../agent/built-for.js';
import { main } from '../../agent/cli/main.js';
import { assertRuntime, checkNativeModules, explainLoadError, packageMismatch, runningRuntime, type RunningRuntime } from '../../agent/runtime-check.js';

const node22: RunningRuntime = { node: '22.23.5', modules: '127', arch: 'x64', platform: 'linux', glibc: '2.36' };
const zip24: BuiltRuntime = { node: '24.22.3', modules: '137', arch: 'x64', nodePath: 'node/bin/node', needs: { GLIBC: '2.28', GLIBCXX: '3.4.22', CXXABI: '1.3.11' } };

describe('packageMismatch', () => {
  it('is null from a checkout, and for the same ABI and CPU whatever the patch version', () => {
    expect(packageMismatch(null, node22)).toBeNull();
    expect(packageMismatch({ ...zip24, node: '24.1.0' }, { ...node22, node: '24.22.3', modules: '137' })).toBeNull();
  });

  it('names both Node versions and ABIs and the command that uses the bundled Node', () => {
    const m = packageMismatch(zip24, node22, '/gg/artifacts-unarchived/com.edgeloop.Agent/1.0.0/edgeloop-agent-x86_64')!;
    expect(m).toContain('packaged with Node 24.22.3 for linux-x64, NODE_MODULE_VERSION 137 (Node 24), and is running on Node 22.23.5 linux-x64, NODE_MODULE_VERSION 127 (Node 22)');
    expect(m).toContain('loads only in a Node with NODE_MODULE_VERSION 137');
    expect(m).toContain("'/gg/artifacts-unarchived/com.edgeloop.Agent/1.0.0/edgeloop-agent-x86_64/node/bin/node' '/gg/artifacts-unarchived/com.edgeloop.Agent/1.0.0/edgeloop-agent-x86_64/main.js'");
  });

  it('names the other build of the component when the CPU differs', () => {
    expect(packageMismatch({ ...zip24, arch: 'arm64' }, { ...node22, modules: '137' }, '/x')).toContain('Its native modules are built for arm64: use the x86_64 build of the component.');
  });
});

describe('explainLoadError', () => {
  it('an ABI mismatch: which NODE_MODULE_VERSION each side has, and what to do', () => {
    const err = new Error(
      "The module '/x/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 137. This version of Node.js requires\nNODE_MODULE_VERSION 115. Please try re-compiling or re-installing\nthe module (for instance, using `npm rebuild` or `npm install`).",
    );
    expect(explainLoadError('better-sqlite3', err, { ...node22, node: '20.20.2', modules: '115' })).toBe(
      "better-sqlite3 was built for NODE_MODULE_VERSION 137 (Node 24) and this is Node 20.20.2 with NODE_MODULE_VERSION 115: it is built against V8's ABI and loads only in the Node it was built for. In a checkout, rebuild it for this Node (npm rebuild better-sqlite3); a packaged agent runs with the Node it carries.",
    );
  });

  it('a glibc or libstdc++ too old for the binary', () => {
    const err = new Error("/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by /x/better_sqlite3.node)");
    expect(explainLoadError('better-sqlite3', err, { ...node22, glibc: '2.31' })).toMatch(/^better-sqlite3 needs GLIBC_2\.34, which this device's glibc \(glibc 2\.31\) does not have/);
    expect(explainLoadError('sharp', new Error("/usr/lib/libstdc++.so.6: version `GLIBCXX_3.4.29' not found"), node22)).toMatch(/needs GLIBCXX_3\.4\.29, which this device's libstdc\+\+/);
  });

  it("a binary for another CPU, which the loader reports as missing though it is there", () => {
    const file = new URL('../../node_modules/onnxruntime-node/package.json', import.meta.url).pathname;
    expect(explainLoadError('onnxruntime-node', new Error(`${file}: cannot open shared object file: No such file or directory`), node22)).toBe(
      `onnxruntime-node: ${file} is there but the loader refuses it: it is built for another CPU than this x64 device (or another C library)`,
    );
    expect(explainLoadError('x', new Error('/nowhere/x.node: cannot open shared object file: No such file or directory'), node22)).toBe('x does not load: /nowhere/x.node: cannot open shared object file: No such file or directory');
  });
});

describe('the check on this Node', () => {
  it('loads every native module here, with its library version', async () => {
    const r = await checkNativeModules();
    expect(r.map((m) => [m.module, m.ok])).toEqual([
      ['better-sqlite3', true],
      ['onnxruntime-node', true],
      ['sharp', true],
      ['aws-crt', true],
    ]);
    expect(r[0]!.detail).toMatch(/^SQLite 3\.\d+/);
    expect(runningRuntime()).toMatchObject({ node: process.versions.node, modules: process.versions.modules, arch: process.arch });
  });

  it('assertRuntime passes from a checkout and throws AGENT_RUNTIME_MISMATCH for a package built for another ABI', async () => {
    await expect(assertRuntime()).resolves.toBeUndefined();
    const other = process.versions.modules === '137' ? '127' : '137';
    await expect(assertRuntime(['better-sqlite3'], { ...zip24, modules: other, arch: process.arch })).rejects.toMatchObject({ code: 'AGENT_RUNTIME_MISMATCH', message: expect.stringContaining(`loads only in a Node with NODE_MODULE_VERSION ${other}`) });
  });

  it('edgeloop-agent check prints the runtime and one line per module, --json the report', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => void out.push(l), err: (l: string) => void out.push(l) };
    expect(await main(['check'], io)).toBe(0);
    expect(out[0]).toBe(`runtime   Node ${process.versions.node} linux-${process.arch}, NODE_MODULE_VERSION ${process.versions.modules}, glibc ${runningRuntime().glibc}`);
    expect(out[1]).toBe('package   a checkout: native modules from node_modules');
    expect(out.slice(2).map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual(['ok better-sqlite3', 'ok onnxruntime-node', 'ok sharp', 'ok aws-crt']);
    out.length = 0;
    expect(await main(['check', '--json'], io)).toBe(0);
    expect(JSON.parse(out[0]!)).toMatchObject({ ok: true, built_for: null, mismatch: null });
  });
});
