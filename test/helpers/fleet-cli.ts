import { main } from '../../fleet/edges/cli/main.js';
import type { Io } from '../../shared/cli.js';

/** A CLI's io (`edgeloop` or `edgeloop-agent`) that keeps what it prints, one entry a line. */
export function io(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(...l.split('\n')), err: (l) => stderr.push(...l.split('\n')) };
}

/** `edgeloop ARGV` in this process, with its output lines collected. */
export async function runFleetCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = io();
  const code = await main(argv, o);
  return { code, out: o.stdout.join('\n'), err: o.stderr.join('\n') };
}
