/**
 * Does this Node.js run the agent's native modules? better-sqlite3 is built against V8's ABI
 * (NODE_MODULE_VERSION), so it loads only in the Node it was built for; ONNX Runtime, sharp
 * and aws-crt use N-API and load in any Node, but like better-sqlite3 only on their CPU and a
 * glibc at least as new as they need. Without a check, a mismatch surfaces as a stack trace
 * from deep inside the queue's first database open. `run` checks first and `check` reports
 * every module; both name the mismatch and what to do (AGENT_RUNTIME_MISMATCH).
 */
import '../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILT_FOR, type BuiltRuntime } from './built-for.js';
import { AgentError } from './errors.js';

/** The Node.js this process runs on. */
export interface RunningRuntime {
  node: string;
  modules: string;
  arch: string;
  platform: string;
  /** glibc version, null on a libc that is not glibc. */
  glibc: string | null;
}

export function runningRuntime(): RunningRuntime {
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return { node: process.versions.node, modules: process.versions.modules, arch: process.arch, platform: process.platform, glibc: header?.glibcVersionRuntime ?? null };
}

/** Node.js major per NODE_MODULE_VERSION, to say "Node 20" rather than "115" where it is known. */
const NODE_MAJOR: Readonly<Record<string, string>> = { '108': '18', '115': '20', '127': '22', '137': '24', '147': '26' };
const abi = (modules: string): string => `NODE_MODULE_VERSION ${modules}${NODE_MAJOR[modules] ? ` (Node ${NODE_MAJOR[modules]})` : ''}`;

/** Where the packaged agent is: the directory of its bundled `main.js` (this module is inside it). */
const bundleDir = (): string => dirname(fileURLToPath(import.meta.url));

/**
 * Why a packaged agent cannot run on this Node, or null when it can (same NODE_MODULE_VERSION
 * and CPU; the patch version does not matter). Null for an agent run from a checkout.
 */
export function packageMismatch(built: BuiltRuntime | null, running: RunningRuntime, dir = bundleDir()): string | null {
  if (!built) return null;
  if (built.modules === running.modules && built.arch === running.arch) return null;
  const own = join(dir, built.nodePath);
  return (
    `this agent was packaged with Node ${built.node} for linux-${built.arch}, ${abi(built.modules)}, and is running on Node ${running.node} ${running.platform}-${running.arch}, ${abi(running.modules)}. ` +
    (built.arch !== running.arch
      ? `Its native modules are built for ${built.arch}: use the ${running.arch === 'arm64' ? 'aarch64' : 'x86_64'} build of the component. `
      : `Its better-sqlite3 is built against V8's ABI and loads only in a Node with NODE_MODULE_VERSION ${built.modules}. `) +
    `Start it with the Node the component carries: '${own}' '${join(dir, 'main.js')}' (the recipe's Run does).`
  );
}

/** A native module's load error, explained: which mismatch it is and what to do about it. */
export function explainLoadError(module: string, err: unknown, running: RunningRuntime): string {
  const msg = err instanceof Error ? err.message : String(err);
  const abiError = /NODE_MODULE_VERSION (\d+)\.\s*This version of Node\.js requires\s+NODE_MODULE_VERSION (\d+)/.exec(msg);
  if (abiError) {
    const [, builtFor, needs] = abiError as unknown as [string, string, string];
    return `${module} was built for ${abi(builtFor)} and this is Node ${running.node} with NODE_MODULE_VERSION ${needs}: it is built against V8's ABI and loads only in the Node it was built for. In a checkout, rebuild it for this Node (npm rebuild ${module}); a packaged agent runs with the Node it carries.`;
  }
  const versionError = /version [`']((?:GLIBC|GLIBCXX|CXXABI)_[\d.]+)' not found/.exec(msg);
  if (versionError) return `${module} needs ${versionError[1]}, which this device's ${versionError[1]!.startsWith('GLIBC_') ? 'glibc' : 'libstdc++'} (${running.glibc ? `glibc ${running.glibc}` : 'not glibc'}) does not have: ${msg}`;
  if (/wrong ELF class|invalid ELF header|Exec format error/i.test(msg)) return `${module} is built for another CPU than this ${running.arch} device: ${msg}`;
  // glibc's loader skips a library built for another machine and then says it is not there.
  const refused = /^(.*?): cannot open shared object file: No such file or directory/.exec(msg);
  if (refused && existsSync(refused[1]!)) return `${module}: ${refused[1]} is there but the loader refuses it: it is built for another CPU than this ${running.arch} device (or another C library)`;
  if (/libstdc\+\+\.so\.6|ld-linux|libc\.so\.6/.test(msg)) return `${module} needs glibc and libstdc++, which this system lacks (${running.glibc ? `glibc ${running.glibc}` : 'not glibc'}): ${msg}`;
  return `${module} does not load: ${msg}`;
}

export interface ModuleCheck {
  module: string;
  ok: boolean;
  /** The library version it reports when it loads; why not when it does not. */
  detail: string;
}

type Probe = () => Promise<string>;

/** How each native module is loaded and asked for its version. better-sqlite3 loads its addon on the first open. */
const PROBES: Readonly<Record<string, Probe>> = {
  'better-sqlite3': async () => {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(':memory:');
    try {
      return `SQLite ${(db.prepare('select sqlite_version() as v').get() as { v: string }).v}`;
    } finally {
      db.close();
    }
  },
  'onnxruntime-node': async () => {
    const ort = await import('onnxruntime-node');
    return `ONNX Runtime ${ort.env.versions.node ?? ort.env.versions.common ?? 'loaded'}`;
  },
  sharp: async () => `libvips ${(await import('sharp')).default.versions.vips}`,
  'aws-crt': async () => {
    await import('aws-crt');
    return 'loaded';
  },
};

const NATIVE_MODULES = Object.keys(PROBES);

/** Loads each module and reports; never throws. */
export async function checkNativeModules(modules: readonly string[] = NATIVE_MODULES, running = runningRuntime()): Promise<ModuleCheck[]> {
  const out: ModuleCheck[] = [];
  for (const module of modules) {
    const probe = PROBES[module];
    if (!probe) throw new Error(`no probe for ${module}`);
    try {
      out.push({ module, ok: true, detail: await probe() });
    } catch (err) {
      out.push({ module, ok: false, detail: explainLoadError(module, err, running) });
    }
  }
  return out;
}

export interface RuntimeReport {
  ok: boolean;
  running: RunningRuntime;
  builtFor: BuiltRuntime | null;
  /** Set when a packaged agent runs on a Node it was not built for (then the modules are not loaded). */
  mismatch: string | null;
  modules: ModuleCheck[];
}

/** The whole check: the package's runtime against this one, then each native module loaded. */
export async function checkRuntime(modules: readonly string[] = NATIVE_MODULES, builtFor: BuiltRuntime | null = BUILT_FOR): Promise<RuntimeReport> {
  const running = runningRuntime();
  const mismatch = packageMismatch(builtFor, running);
  const checked = mismatch ? [] : await checkNativeModules(modules, running);
  return { ok: !mismatch && checked.every((m) => m.ok), running, builtFor, mismatch, modules: checked };
}

/** What failed, for the AGENT_RUNTIME_MISMATCH message: the package mismatch, or each module that did not load. */
export function failureReason(r: RuntimeReport): string {
  return r.mismatch ?? r.modules.filter((m) => !m.ok).map((m) => m.detail).join('; ');
}

/**
 * Throws AGENT_RUNTIME_MISMATCH when the agent cannot run here. `run` calls it before anything
 * starts, with better-sqlite3 only: the others load where they are used (ONNX Runtime in the
 * inference worker), and only better-sqlite3 depends on the Node version.
 */
export async function assertRuntime(modules: readonly string[] = ['better-sqlite3'], builtFor: BuiltRuntime | null = BUILT_FOR): Promise<void> {
  const r = await checkRuntime(modules, builtFor);
  if (r.ok) return;
  throw new AgentError('RUNTIME_MISMATCH', failureReason(r), { details: { running: r.running, built_for: r.builtFor } });
}
