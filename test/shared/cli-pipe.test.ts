import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tsxNodeArgs } from '../../shared/ts-entry.js';

const CLI = fileURLToPath(new URL('./fixtures/chatty-cli.ts', import.meta.url));

describe('a CLI whose reader goes away (`edgeloop … | head -1`)', () => {
  it('ends quietly with its own exit code, no EPIPE stack', async () => {
    const child = spawn(process.execPath, [...tsxNodeArgs(import.meta.url), CLI], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Read the first chunk, then close our end, as `head -1` does.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });
});
