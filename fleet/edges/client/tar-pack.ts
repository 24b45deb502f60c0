import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { FleetError } from '../../errors.js';

const BLOCK = 512;

/** One tar header block (ustar) for `name`; `type` '0' file, 'x' pax record, anything else as given (tests write hostile ones). */
export function tarHeader(name: string, size: number, type = '0'): Buffer {
  const h = Buffer.alloc(BLOCK);
  // A name that fits the 100-byte field goes there; a longer one is in the pax record before it.
  h.write(Buffer.byteLength(name) <= 100 ? name : name.slice(0, 99).replace(/[^\x20-\x7e]/g, '_'), 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** A pax `path` record: `<len> path=<name>\n`, where `len` counts the whole record, itself included. */
function paxPath(name: string): Buffer {
  const body = ` path=${name}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len++;
  return Buffer.from(`${len}${body}`, 'utf8');
}

const pad = (n: number): Buffer => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** Regular files under `dir`, relative with `/`, sorted; symlinks and other entries are left out. */
async function filesOf(dir: string): Promise<Array<{ path: string; abs: string; size: number }>> {
  const out: Array<{ path: string; abs: string; size: number }> = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const abs = join(e.parentPath, e.name);
    const st = await lstat(abs);
    out.push({ path: relative(dir, abs).split(sep).join('/'), abs, size: st.size });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/**
 * A package directory as a tar stream (ustar, pax records for long names): what
 * `POST /v1/models` takes. The directory is listed first (`INPUT_INVALID` when it cannot be,
 * before any request is made); file bodies are then streamed from disk, so memory stays at a
 * chunk whatever the package's size.
 */
export async function tarDirectory(dir: string): Promise<AsyncIterable<Uint8Array>> {
  let files: Awaited<ReturnType<typeof filesOf>>;
  try {
    files = await filesOf(dir);
  } catch (err) {
    throw new FleetError('INPUT_INVALID', `cannot read the package directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return tarFiles(files);
}

async function* tarFiles(files: Array<{ path: string; abs: string; size: number }>): AsyncGenerator<Uint8Array> {
  for (const f of files) {
    if (Buffer.byteLength(f.path) > 100) {
      const rec = paxPath(f.path);
      yield tarHeader('PaxHeader', rec.length, 'x');
      yield Buffer.concat([rec, pad(rec.length)]);
    }
    yield tarHeader(f.path, f.size, '0');
    let sent = 0;
    // `end` is inclusive: a file that grew while being read is cut at the size in its header.
    if (f.size > 0) {
      for await (const chunk of createReadStream(f.abs, { end: f.size - 1 }) as AsyncIterable<Buffer>) {
        sent += chunk.length;
        yield chunk;
      }
    }
    // The file shrank while being read: pad with zeros so the archive stays well-formed (its sha256 will not match).
    if (sent < f.size) yield Buffer.alloc(f.size - sent);
    yield pad(f.size);
  }
  yield Buffer.alloc(2 * BLOCK);
}
