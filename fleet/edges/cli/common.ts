import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dispatch, parseFlags, type Command, type Io, type Options } from '../../../shared/cli.js';
import { FleetClient } from '../client/api-client.js';
import { FleetClientError } from '../client/errors.js';
import { FleetError } from '../../errors.js';

/** Flags every API command takes. */
export const COMMON_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  data: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export const COMMON_HELP = `Common options:
  --url URL      fleet service (default: the http URL in DATA/fleet.json, written by edgeloop serve)
  --token T      API token (default: $EDGELOOP_TOKEN, else DATA/admin.token)
  --data DIR     the fleet's data directory (default .data/fleet)
  --json         machine output: one JSON document on stdout
  --help         this text`;

export const DEFAULT_DATA_DIR = '.data/fleet';

export interface Connection {
  url?: string | undefined;
  token?: string | undefined;
  data?: string | undefined;
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Where the fleet is and who is asking: `--url`, else the URL `edgeloop serve` wrote to
 * `<data>/fleet.json`; `--token`, else `EDGELOOP_TOKEN`, else `<data>/admin.token`. Without
 * a token the request goes out anyway and the server says what it needs (401).
 */
export async function resolveConnection(c: Connection, env: Record<string, string | undefined> = process.env): Promise<{ url: string; token: string | null }> {
  const data = c.data ?? DEFAULT_DATA_DIR;
  let url = c.url;
  if (!url) {
    const file = join(data, 'fleet.json');
    const text = await readOptional(file);
    if (text === null) throw new FleetClientError('UNREACHABLE', `no --url given and ${file} does not exist: start the service with edgeloop serve --data ${data}, or pass --url`);
    let http: unknown;
    try {
      http = (JSON.parse(text) as { http?: unknown }).http;
    } catch (err) {
      throw new FleetClientError('UNREACHABLE', `${file} is not valid JSON; pass --url`, { cause: err });
    }
    if (typeof http !== 'string' || !http) throw new FleetClientError('UNREACHABLE', `${file} names no HTTP URL (was the service started without its API?); pass --url`);
    url = http;
  }
  let token = c.token ?? env.EDGELOOP_TOKEN ?? null;
  if (!token) token = (await readOptional(join(data, 'admin.token')))?.trim() || null;
  return { url, token };
}

export type Values<O extends Options> = ReturnType<typeof parseFlags<O & typeof COMMON_OPTIONS>>['values'];

export interface ApiCall<O extends Options> {
  values: Values<O>;
  positionals: string[];
  io: Io;
  /** `--json` was given: print exactly one JSON document with {@link ApiCall.emit}. */
  json: boolean;
  /** The API client for the resolved URL and token (resolved on first use). */
  client(): Promise<FleetClient>;
  /** Print `doc` as JSON with `--json`, else run `human`. */
  emit(doc: unknown, human: () => void): void;
  /** A progress line for long work, on stderr (so `--json` output stays one document). */
  progress(line: string): void;
}

/**
 * One API command: common flags merged in, `--help`, usage errors naming the flag, and the
 * client built from the common flags. `run` returns the exit code (default 0).
 */
export function apiCommand<O extends Options>(usage: string, options: O, run: (c: ApiCall<O>) => Promise<number | void>): Command {
  const help = `${usage}\n\n${COMMON_HELP}`;
  return async (argv, io) => {
    const { values, positionals } = parseFlags(argv, { ...COMMON_OPTIONS, ...options } as O & typeof COMMON_OPTIONS, help);
    const v = values as Values<O>;
    const common = values as { url?: string; token?: string; data?: string; json?: boolean; help?: boolean };
    if (common.help) {
      io.out(help);
      return 0;
    }
    let client: FleetClient | null = null;
    const json = common.json ?? false;
    const code = await run({
      values: v,
      positionals,
      io,
      json,
      client: async () => (client ??= new FleetClient(await resolveConnection({ url: common.url, token: common.token, data: common.data }))),
      emit: (doc, human) => (json ? io.out(JSON.stringify(doc, null, 2)) : human()),
      progress: (line) => io.err(line),
    });
    return code ?? 0;
  };
}

/** A command with subcommands (`edgeloop rollouts status`): its own help and dispatch table. */
export function group(help: string, commands: Record<string, Command>): Command {
  return (argv, io) => dispatch(argv, io, { help, commands });
}

/** A usage error (exit 2) with the command's usage appended. */
export function usage(message: string, text: string): FleetError {
  return new FleetError('USAGE', `${message}\n\n${text}`);
}

/** Exactly `n` positionals, or a usage error naming what is missing or extra. */
export function positionalsOf(positionals: string[], names: string[], text: string): string[] {
  if (positionals.length < names.length) throw usage(`missing ${names.slice(positionals.length).join(' ')}`, text);
  if (positionals.length > names.length) throw usage(`unexpected argument ${positionals[names.length]}`, text);
  return positionals;
}
