/**
 * Real torchvision, from Debian's python3-torch and python3-torchvision, run by the system
 * python (never a pyenv shim, nothing downloaded: random weights only). The scripts are the
 * repository's own (scripts/torchvision/).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { missingBinary } from './optional-binary.js';

export const PYTHON = '/usr/bin/python3';
export const EXPORT_SCRIPT = fileURLToPath(new URL('../../scripts/torchvision/export_detector.py', import.meta.url));
export const TRAIN_SCRIPT = fileURLToPath(new URL('../../scripts/torchvision/train_detector.py', import.meta.url));

/** Why the torchvision tests cannot run here, or null. */
export function torchvisionSkipReason(): string | null {
  const pkgs = 'apt-get install python3-torch python3-torchvision';
  return missingBinary(PYTHON, `the system python3 (${pkgs})`) ?? missingBinary('/usr/lib/python3/dist-packages/torchvision/__init__.py', `torchvision for the system python3 (${pkgs})`) ?? missingBinary('/usr/lib/python3/dist-packages/torch/__init__.py', `torch for the system python3 (${pkgs})`);
}

/** Run the system python on a script; resolves with stdout, rejects with the exit code and stderr's tail. */
export function runPython(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python3 ${args.join(' ')} exited with ${code ?? sig}: ${err.split('\n').slice(-15).join('\n')}`));
    });
  });
}
