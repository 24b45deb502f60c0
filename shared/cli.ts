import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EdgeloopError } from './errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with strict checking, turned into a usage error that names the bad flag. */
export function parseFlags<T extends Options>(argv: string[], options: T, usage: string): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new EdgeloopError('USAGE', `${(err as Error).message}\n\n${usage}`, { status: 2 });
  }
}

/** Output sink for CLIs, passed in so tests capture what a user would see. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

export const processIo: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

export function numberFlag(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new EdgeloopError('USAGE', `--${name} expects a number, got ${v}`, { status: 2 });
  return n;
}

/** Run a CLI `main` as the process entry: its result becomes the exit code. */
export function runMain(main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack : err);
      process.exitCode = 1;
    },
  );
}
