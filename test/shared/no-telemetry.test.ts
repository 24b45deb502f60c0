import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tsxNodeArgs } from '../../shared/ts-entry.js';

const PROBE = fileURLToPath(new URL('./fixtures/ort-probe.ts', import.meta.url));

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
});
