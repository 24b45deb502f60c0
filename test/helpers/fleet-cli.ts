import { main } from '../../fleet/edges/cli/main.js';

/** `edgeloop ARGV` in this process, with its output lines collected. */
export async function runFleetCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
