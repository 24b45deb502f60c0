import { describe, expect, it } from 'vitest';
import { main } from '../../../fleet/edges/cli/main.js';

/** The CLI as `bin/edgeloop.js` wires it (fleet/main.ts adds the demo command). */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) }, { demo: async (rest, io) => (await import('../../../fleet/demo/command.js')).demoCmd(rest, io) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('edgeloop --help', () => {
  it('advertises only options its commands accept: every --flag on a usage line is in that command\'s own --help', async () => {
    const top = await run('--help');
    expect(top.code).toBe(0);
    const lines = top.out.split('\n').filter((l) => /^ {2}edgeloop [a-z]/.test(l));
    expect(lines.length).toBeGreaterThan(10);
    let checked = 0;
    for (const line of lines) {
      const [, command] = /^ {2}edgeloop ([a-z-]+)/.exec(line) ?? [];
      // The usage part only: after two spaces of padding comes the description.
      const usage = line.trim().split(/ {2,}/)[0] ?? '';
      const flags = usage.match(/--[a-z][a-z-]*/g) ?? [];
      if (!command || command === 'help' || flags.length === 0) continue;
      const own = await run(command, '--help');
      expect(own.code, `edgeloop ${command} --help: ${own.err}`).toBe(0);
      for (const flag of flags) {
        expect(own.out, `'${usage}' advertises ${flag}, 'edgeloop ${command} --help' does not know it`).toContain(flag);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });
});
