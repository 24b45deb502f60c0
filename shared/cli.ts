import { parseArgs, type ParseArgsConfig } from 'node:util';
import { errorLine, exitCodeOf, ExitCode, sharedError, SharedErrors } from './errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with strict checking, turned into a usage error that names the bad flag. */
export function parseFlags<T extends Options>(argv: string[], options: T, usage: string): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw sharedError('USAGE', `${(err as Error).message}\n\n${usage}`);
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
  if (!Number.isFinite(n)) throw sharedError('USAGE', `--${name} expects a number, got ${v}`);
  return n;
}

/**
 * A reader that went away (`edgeloop … | head -1`) is not a failure of the command: stop
 * quietly, as Unix tools do, instead of dying on an unhandled EPIPE with a stack trace.
 * Any other error on the stream is a real one and ends the process with its message.
 */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? ExitCode.OK);
    process.stderr.write(`${errorLine(err)}\n`);
    process.exit(ExitCode.FAILURE);
  });
}

/** Run a CLI `main` as the process entry: its result becomes the exit code (an escaped error: its catalogue exit code). */
export function runMain(main: (argv: string[]) => Promise<number>): void {
  quietOnClosedPipe(process.stdout);
  quietOnClosedPipe(process.stderr);
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack : err);
      process.exitCode = exitCodeOf(err);
    },
  );
}

export type Command = (argv: string[], io: Io) => Promise<number>;

/**
 * A CLI as a dispatch table: `--help`, `--version`, unknown commands, and the one place where
 * an error becomes a one-line `CODE: message` and its catalogue exit code (2 = usage, 1 = failure).
 */
export async function dispatch(argv: string[], io: Io, cli: { help: string; version?: string; commands: Record<string, Command> }): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      io.out(cli.help);
      return cmd ? ExitCode.OK : SharedErrors.USAGE.exit;
    }
    if ((cmd === '--version' || cmd === '-v') && cli.version) {
      io.out(cli.version);
      return ExitCode.OK;
    }
    const run = Object.hasOwn(cli.commands, cmd) ? cli.commands[cmd] : undefined;
    if (!run) {
      io.err(`${SharedErrors.USAGE.code}: unknown command '${cmd}'\n\n${cli.help}`);
      return SharedErrors.USAGE.exit;
    }
    return await run(rest, io);
  } catch (err) {
    io.err(errorLine(err));
    return exitCodeOf(err);
  }
}
