/**
 * Extract a `.tar.gz` (SageMaker's model.tar.gz) into a directory. Only what a model package
 * needs: regular files and directories, ustar/GNU long names and pax `path` records. Links,
 * devices and any path that leaves the target are refused (a tarball is untrusted input).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FleetError } from '../../errors.js';

const BLOCK = 512;

function str(buf: Buffer, off: number, len: number): string {
  const s = buf.subarray(off, off + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul === -1 ? s.length : nul).toString('utf8');
}

function octal(buf: Buffer, off: number, len: number): number {
  const s = str(buf, off, len).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function safePath(root: string, p: string): string {
  const rel = normalize(p.replace(/^\.\/+/, ''));
  if (rel === '.' || rel === '') return root;
  if (rel.startsWith('..') || rel.startsWith(sep) || rel.split(sep).includes('..')) throw new FleetError('TRAINING_OUTPUT_INVALID', `model.tar.gz entry ${JSON.stringify(p)} leaves the package directory`);
  return join(root, rel);
}

/** Extract; returns the relative paths of the files written. */
export async function extractTarGz(gz: Uint8Array, dir: string, o: { maxBytes?: number } = {}): Promise<string[]> {
  let tar: Buffer;
  try {
    tar = gunzipSync(gz, { maxOutputLength: o.maxBytes ?? 4 * 1024 ** 3 });
  } catch (err) {
    throw new FleetError('TRAINING_OUTPUT_INVALID', `model.tar.gz is not gzip: ${(err as Error).message}`, { cause: err });
  }
  const files: string[] = [];
  let off = 0;
  let longName: string | null = null;
  let paxPath: string | null = null;
  while (off + BLOCK <= tar.length) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const sum = octal(h, 148, 8);
    let check = 0;
    for (let i = 0; i < BLOCK; i++) check += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
    if (sum !== check) throw new FleetError('TRAINING_OUTPUT_INVALID', `model.tar.gz has a corrupt header at byte ${off}`);
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156] ?? 0);
    const prefix = str(h, 345, 155);
    let name = str(h, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    const body = tar.subarray(off + BLOCK, off + BLOCK + size);
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = str(body, 0, body.length);
      continue;
    }
    if (type === 'x') {
      for (const rec of body.toString('utf8').split('\n')) {
        const m = /^\d+ path=(.*)$/.exec(rec);
        if (m) paxPath = m[1] ?? null;
      }
      continue;
    }
    if (type === 'g') continue;
    const path = paxPath ?? longName ?? name;
    longName = null;
    paxPath = null;
    const target = safePath(dir, path);
    if (type === '5') {
      await mkdir(target, { recursive: true });
    } else if (type === '0' || type === '\0' || type === '7') {
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, body);
      files.push(path.replace(/^\.\/+/, ''));
    } else {
      throw new FleetError('TRAINING_OUTPUT_INVALID', `model.tar.gz entry ${JSON.stringify(path)} is of type ${JSON.stringify(type)}: only files and directories are accepted`);
    }
  }
  return files;
}
