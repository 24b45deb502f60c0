/**
 * Extract a `.tar.gz` (SageMaker's model.tar.gz) or a plain tar (an uploaded model package,
 * `extractTar`) into a directory. Only what a model package
 * needs: regular files and directories, ustar/GNU long names and pax `path` records. Links,
 * devices and any path that leaves the target are refused (a tarball is untrusted input).
 *
 * It streams: zlib inflates on libuv's thread pool, each decompressed chunk is parsed as it
 * arrives and file bodies go straight to disk. A 4 GiB archive used to be inflated by
 * `gunzipSync` on the fleet's event loop, which stalled MQTT and HTTP for the whole inflate
 * and held the archive twice in memory; now the loop turns between chunks and memory stays at
 * a few chunks whatever the archive's size.
 */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FleetError } from '../../errors.js';

const BLOCK = 512;
const EMPTY: Buffer = Buffer.alloc(0);
/** A long name or pax header is a few hundred bytes; anything near this is hostile. */
const MAX_META_BYTES = 1024 * 1024;

export interface ExtractOptions {
  /** Cap on the unpacked tar stream (headers included); default 4 GiB. */
  maxBytes?: number;
  /** Cap on entries (files, directories, headers); a model package has a handful. Default 10,000. */
  maxEntries?: number;
}

/**
 * How the caller's refusals look: SageMaker output is `FLEET_TRAINING_OUTPUT_INVALID`, an
 * uploaded package `FLEET_UPLOAD_INVALID` (and `PAYLOAD_TOO_LARGE` past a size cap).
 */
export interface Refusals {
  /** Names the archive in messages (`model.tar.gz`, `the uploaded package`). */
  label: string;
  invalid(message: string, cause?: unknown): Error;
  /** Past a size cap (total or one file); default `invalid`. */
  tooLarge?(message: string): Error;
}

const SAGEMAKER: Refusals = {
  label: 'model.tar.gz',
  invalid: (message, cause) => new FleetError('TRAINING_OUTPUT_INVALID', message, cause === undefined ? {} : { cause }),
};

function str(buf: Buffer, off: number, len: number): string {
  const s = buf.subarray(off, off + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul === -1 ? s.length : nul).toString('utf8');
}

/** An octal header field; NaN when it is not one (base-256 sizes only occur past 8 GiB). */
function octal(buf: Buffer, off: number, len: number): number {
  const s = str(buf, off, len).trim();
  return /^[0-7]*$/.test(s) ? (s === '' ? 0 : parseInt(s, 8)) : NaN;
}

function safePath(r: Refusals, root: string, p: string): string {
  if (p.includes('\0')) throw r.invalid(`${r.label} entry ${JSON.stringify(p)} has a NUL in its name`);
  const rel = normalize(p.replace(/^\.\/+/, ''));
  if (rel === '.' || rel === '') return root;
  if (rel.startsWith('..') || rel.startsWith(sep) || rel.split(sep).includes('..')) throw r.invalid(`${r.label} entry ${JSON.stringify(p)} leaves the package directory`);
  return join(root, rel);
}

/** pax extended header records: `<len> <key>=<value>\n`, `len` counting the whole record. */
function paxRecords(r: Refusals, body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(0x20, i);
    const len = space > i ? Number(body.toString('latin1', i, space)) : NaN;
    if (!Number.isSafeInteger(len) || len <= space - i || i + len > body.length || body[i + len - 1] !== 0x0a) throw r.invalid(`${r.label} has a malformed pax header`);
    const rec = body.toString('utf8', space + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq < 1) throw r.invalid(`${r.label} has a malformed pax header`);
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/** Reads the decompressed stream in exact amounts, counting every byte against the cap. */
class TarStream {
  readonly #it: AsyncIterator<Buffer>;
  readonly #r: Refusals;
  #pending: Buffer = EMPTY;
  #seen = 0;
  offset = 0;

  constructor(
    src: AsyncIterable<Buffer>,
    private readonly maxBytes: number,
    r: Refusals,
  ) {
    this.#it = src[Symbol.asyncIterator]();
    this.#r = r;
  }

  /** The next piece of at most `n` bytes; empty at the end of the stream. */
  async piece(n: number): Promise<Buffer> {
    if (this.#pending.length === 0) {
      const next = await this.#it.next();
      if (next.done) return EMPTY;
      this.#seen += next.value.length;
      if (this.#seen > this.maxBytes) throw tooLarge(this.#r, `${this.#r.label} unpacks to more than ${this.maxBytes} bytes`);
      this.#pending = next.value;
    }
    const p = this.#pending.subarray(0, n);
    this.#pending = this.#pending.subarray(p.length);
    this.offset += p.length;
    return p;
  }

  /** Exactly `n` bytes; null when the stream ends cleanly first, an error when it ends part-way. */
  async exactly(n: number, what: string): Promise<Buffer | null> {
    const first = await this.piece(n);
    if (first.length === n) return first;
    if (first.length === 0) return null;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const p = await this.piece(n - got);
      if (p.length === 0) throw this.#r.invalid(`${this.#r.label} is truncated inside ${what}`);
      parts.push(p);
      got += p.length;
    }
    return Buffer.concat(parts, n);
  }

  /** `n` bytes, piece by piece, for a file body that goes straight to disk. */
  async *take(n: number, what: string): AsyncGenerator<Buffer> {
    for (let left = n; left > 0; ) {
      const p = await this.piece(left);
      if (p.length === 0) throw this.#r.invalid(`${this.#r.label} is truncated inside ${what}`);
      left -= p.length;
      yield p;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const p of this.take(n, what)) void p;
  }

  /** Read to the end (the trailing zero blocks and gzip's CRC check), still under the cap. */
  async drain(): Promise<void> {
    while ((await this.piece(Infinity)).length > 0);
  }
}

/** An entry that clashes with what is on disk (a file where a directory is, or under a file). */
function clash(r: Refusals, path: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EISDIR' || code === 'ENOTDIR' || code === 'EEXIST' ? r.invalid(`${r.label} entry ${JSON.stringify(path)} cannot be written: ${(err as Error).message}`, err) : err;
}

async function untar(src: AsyncIterable<Buffer>, dir: string, maxBytes: number, maxEntries: number, maxFileBytes: number, r: Refusals): Promise<string[]> {
  const tar = new TarStream(src, maxBytes, r);
  const files: string[] = [];
  let entries = 0;
  let longName: string | null = null;
  let pax = new Map<string, string>();
  for (;;) {
    const at = tar.offset;
    const h = await tar.exactly(BLOCK, 'a header');
    if (!h) break; // no end-of-archive blocks: accepted, as GNU tar does
    if (h.every((b) => b === 0)) {
      await tar.drain();
      break;
    }
    if (++entries > maxEntries) throw r.invalid(`${r.label} has more than ${maxEntries} entries`);
    const sum = octal(h, 148, 8);
    let check = 0;
    for (let i = 0; i < BLOCK; i++) check += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
    if (sum !== check) throw r.invalid(`${r.label} has a corrupt header at byte ${at}`);
    const type = String.fromCharCode(h[156] ?? 0);
    const prefix = str(h, 345, 155);
    let name = str(h, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    const paxSize = pax.get('size');
    const size = paxSize !== undefined && type !== 'x' && type !== 'g' ? (/^\d+$/.test(paxSize) ? Number(paxSize) : NaN) : octal(h, 124, 12);
    if (!Number.isSafeInteger(size)) throw r.invalid(`${r.label} has a corrupt size at byte ${at}`);
    if (size > maxBytes - tar.offset) throw tooLarge(r, `${r.label} entry ${JSON.stringify(name)} of ${size} bytes would unpack past ${maxBytes} bytes`);
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (type === 'L' || type === 'x') {
      if (size > MAX_META_BYTES) throw r.invalid(`${r.label} has a ${size}-byte ${type === 'L' ? 'long name' : 'pax header'} (at most ${MAX_META_BYTES})`);
      const body = size === 0 ? EMPTY : await tar.exactly(size, 'a header');
      if (!body) throw r.invalid(`${r.label} is truncated inside a header`);
      await tar.skip(padding, 'a header');
      if (type === 'L') longName = str(body, 0, body.length);
      else pax = paxRecords(r, body);
      continue;
    }
    if (type === 'g') {
      await tar.skip(size + padding, 'a header');
      continue;
    }
    const path = pax.get('path') ?? longName ?? name;
    longName = null;
    pax = new Map();
    const target = safePath(r, dir, path);
    if (type === '5') {
      await mkdir(target, { recursive: true }).catch((err: unknown) => {
        throw clash(r, path, err);
      });
      await tar.skip(size + padding, path);
    } else if (type === '0' || type === '\0' || type === '7') {
      if (size > maxFileBytes) throw tooLarge(r, `${r.label} entry ${JSON.stringify(path)} is ${size} bytes; one file may be at most ${maxFileBytes}`);
      try {
        await mkdir(dirname(target), { recursive: true });
        await pipeline(tar.take(size, path), createWriteStream(target));
      } catch (err) {
        throw clash(r, path, err);
      }
      await tar.skip(padding, path);
      files.push(path.replace(/^\.\/+/, ''));
    } else {
      throw r.invalid(`${r.label} entry ${JSON.stringify(path)} is of type ${JSON.stringify(type)}: only files and directories are accepted`);
    }
  }
  return files;
}

/** zlib's own failures: not gzip at all, or a gzip stream cut short. */
function gzipError(r: Refusals, err: unknown): Error | null {
  const code = (err as { code?: unknown }).code;
  if (code === 'Z_BUF_ERROR') return r.invalid(`${r.label} is truncated: ${(err as Error).message}`, err);
  if (typeof code === 'string' && code.startsWith('Z_')) return r.invalid(`${r.label} is not gzip: ${(err as Error).message}`, err);
  return null;
}

const tooLarge = (r: Refusals, message: string): Error => (r.tooLarge ?? r.invalid)(message);

export interface TarOptions extends ExtractOptions {
  /** Cap on one file's size; default `maxBytes`. */
  maxFileBytes?: number;
  /** How refusals look (default: SageMaker output, `FLEET_TRAINING_OUTPUT_INVALID`). */
  refusals?: Refusals;
}

/**
 * Extract a plain (uncompressed) tar stream into `dir`, with the same rules as
 * {@link extractTarGz}; returns the relative paths of the files written. An uploaded model
 * package arrives this way (`edgeloop models push`). Files written before a refusal stay in `dir`.
 */
export async function extractTar(tar: AsyncIterable<Uint8Array>, dir: string, o: TarOptions = {}): Promise<string[]> {
  const maxBytes = o.maxBytes ?? 4 * 1024 ** 3;
  return untar(tar as AsyncIterable<Buffer>, dir, maxBytes, o.maxEntries ?? 10_000, o.maxFileBytes ?? maxBytes, o.refusals ?? SAGEMAKER);
}

/**
 * Extract `gz` (the archive's bytes, or a stream of them such as an S3 `GetObject` body) into
 * `dir`; returns the relative paths of the files written. Every refusal is
 * `FLEET_TRAINING_OUTPUT_INVALID`; files written before a refusal stay in `dir`.
 */
export async function extractTarGz(gz: Uint8Array | AsyncIterable<Uint8Array>, dir: string, o: ExtractOptions = {}): Promise<string[]> {
  const maxBytes = o.maxBytes ?? 4 * 1024 ** 3;
  let files: string[] = [];
  try {
    await pipeline(gz instanceof Uint8Array ? Readable.from([gz]) : gz, createGunzip({ chunkSize: 64 * 1024 }), async (tarStream: AsyncIterable<Buffer>) => {
      files = await untar(tarStream, dir, maxBytes, o.maxEntries ?? 10_000, maxBytes, SAGEMAKER);
    });
  } catch (err) {
    if (err instanceof FleetError) throw err;
    throw gzipError(SAGEMAKER, err) ?? err;
  }
  return files;
}
