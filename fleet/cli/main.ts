import { dispatch, parseFlags, processIo, type Io } from '../../shared/cli.js';
import { loadOrCreateSigningKey } from '../keys.js';
import { PACK_HELP, packCmd } from './pack.js';

const HELP = `edgeloop - fleet manager for edgeloop agents

Usage:
  edgeloop demo [--data DIR] [--duration S] [--json]   run the local demo (npm start)
  edgeloop serve [--data DIR] [--http-port N] [--mqtt-port N]   run the fleet service
  edgeloop pack MODEL.onnx --labels FILE --out DIR      build a model package from an ONNX file
  edgeloop keygen --out DIR                             create the fleet's ed25519 signing key
  edgeloop --help

Run 'edgeloop COMMAND --help' for a command's options.`;

const KEYGEN_HELP = `Usage: edgeloop keygen --out DIR

Writes DIR/fleet-signing.key (private, mode 0600) and DIR/fleet-signing.pub (give this one
to agents as fleet_public_key). An existing key is kept, never overwritten.`;

async function keygenCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(argv, { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, KEYGEN_HELP);
  if (values.help || !values.out) {
    (values.help ? io.out : io.err)(KEYGEN_HELP);
    return values.help ? 0 : 2;
  }
  const k = await loadOrCreateSigningKey(values.out);
  io.out(`${k.created ? 'created' : 'kept existing'} key ${k.keyId.slice(0, 12)}: private ${k.privateKeyPath}, public ${k.publicKeyPath}`);
  return 0;
}

export function main(argv: string[], io: Io = processIo): Promise<number> {
  return dispatch(argv, io, {
    help: HELP,
    commands: {
      pack: packCmd,
      keygen: keygenCmd,
      // Loaded on demand: the demo pulls in the trainer and the dataset, serve the whole service.
      demo: async (rest, o) => (await import('./demo.js')).demoCmd(rest, o),
      serve: async (rest, o) => (await import('./serve.js')).serveCmd(rest, o),
    },
  });
}

export { PACK_HELP };
