import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tsxNodeArgs } from '../../shared/ts-entry.js';

const PROBE = fileURLToPath(new URL('./fixtures/ort-probe.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A static or dynamic import of the library. */
const LOADS = /from 'onnxruntime-node'|import\('onnxruntime-node'\)/;

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Runs the probe without ORT_DISABLE_TELEMETRY in its environment; true when ORT wrote its telemetry log. */
function wroteTelemetryLog(mode: 'guard' | 'none'): boolean {
  const env = { ...process.env };
  delete env.ORT_DISABLE_TELEMETRY;
  const pid = execFileSync(process.execPath, [...tsxNodeArgs(import.meta.url), PROBE, mode], { env, encoding: 'utf8' }).trim().split('\n').pop();
  const log = `/tmp/mat-debug-${pid}.log`;
  const wrote = existsSync(log);
  rmSync(log, { force: true });
  return wrote;
}

describe('ONNX Runtime telemetry', () => {
  // Without the guard the same probe writes /tmp/mat-debug-<pid>.log (checked by hand: it did);
  // the unguarded run is not repeated here, since it would turn the upload on from CI.
  it('is off in a process whose entry imports shared/no-telemetry first', () => {
    expect(wroteTelemetryLog('guard')).toBe(false);
  });
  it('is switched off by every module that loads the library, not only by entry points (ad-hoc scripts and tests reach it too)', () => {
    const loaders = ['agent', 'fleet', 'shared', 'benchmarks', 'chaos', 'test']
      .flatMap((d) => tsFiles(join(ROOT, d)))
      .filter((f) => f !== PROBE && f !== fileURLToPath(import.meta.url) && LOADS.test(readFileSync(f, 'utf8')));
    expect(loaders.length).toBeGreaterThan(5);
    const unguarded = loaders.filter((f) => {
      const text = readFileSync(f, 'utf8');
      const guard = text.search(/^import '[./]*(shared\/)?no-telemetry\.js';/m);
      return guard < 0 || guard > text.search(LOADS);
    });
    expect(unguarded.map((f) => relative(ROOT, f))).toEqual([]);
  });
});
