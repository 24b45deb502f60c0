import { dispatch, parseFlags, processIo, type Command, type Io } from '../../../shared/cli.js';
import { ExitCode } from '../../../shared/errors.js';
import { FleetErrors } from '../../errors.js';
import { loadOrCreateSigningKey } from '../../adapters/fs/keys.js';
import { PACK_HELP, packCmd } from './pack.js';

const HELP = `edgeloop - fleet manager for edgeloop agents

Usage:
  edgeloop demo [--data DIR] [--exit-when-done] [--json]   run the local demo (npm start)
  edgeloop serve [--data DIR] [--http-port N] [--mqtt-port N]   run the fleet service
  edgeloop serve --backend aws --aws-config FILE [--dry-run]   ...on AWS (Greengrass, IoT Core, S3)
  edgeloop aws plan NAME@VERSION --aws-config FILE --things N [--json]   every AWS call a rollout makes
  edgeloop pack MODEL.onnx --labels FILE --out DIR      build a model package from an ONNX file
  edgeloop keygen --out DIR                             create the fleet's ed25519 signing key
  edgeloop sample-model --out DIR                       train a small digit model to try the fleet with

Talking to a running service (its HTTP API; --json on every command):
  edgeloop devices register NAME [--tags k=v] [--cert --dir DIR] | cert ID --dir DIR | revoke ID | list | show ID
  edgeloop models push DIR | list | show NAME@VERSION | lineage NAME@VERSION   (push uploads DIR)
  edgeloop rollouts create NAME@VERSION --target k=v [--canary 10% --waves 50%,100% --bake 10m]
  edgeloop rollouts status [ID] | pause | resume | abort | rollback | promote ID
  edgeloop samples list [filters] | get ID --out FILE
  edgeloop labels set ID LABEL | progress
  edgeloop alerts list [--before C] | ack ID | resolve ID   alerts raised by device rules
  edgeloop rules push FILE --name N | list | deploy N@V --selector k=v | test FILE --samples QUERY
  edgeloop datasets export [--name N] | list | show ID
  edgeloop train [--model NAME] [--trainer local|command]   retrain now: gate, lineage, auto-rollout
  edgeloop users add NAME --role admin|operator|labeler|viewer [--expires 30d] | list | revoke NAME
  edgeloop users audit [--actor NAME]                   who did what (pushes, rollouts, labels, users)
  (--url, else DATA/fleet.json; --token, else $EDGELOOP_TOKEN, else DATA/admin.token; --data DIR)

  edgeloop --help

Run 'edgeloop COMMAND --help' for a command's options.`;

const KEYGEN_HELP = `Usage: edgeloop keygen --out DIR

Writes DIR/fleet-signing.key (private, mode 0600) and DIR/fleet-signing.pub (give this one
to agents as fleet_public_key). An existing key is kept, never overwritten.`;

async function keygenCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(argv, { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } }, KEYGEN_HELP);
  if (values.help || !values.out) {
    (values.help ? io.out : io.err)(KEYGEN_HELP);
    return values.help ? ExitCode.OK : FleetErrors.USAGE.exit;
  }
  const k = await loadOrCreateSigningKey(values.out);
  io.out(`${k.created ? 'created' : 'kept existing'} key ${k.keyId.slice(0, 12)}: private ${k.privateKeyPath}, public ${k.publicKeyPath}`);
  return 0;
}

/**
 * The `edgeloop` command line. `more` adds commands from outer layers: the program entry
 * (fleet/main.ts) adds `demo`, which lives above the edges and may not be imported from here.
 */
export function main(argv: string[], io: Io = processIo, more: Record<string, Command> = {}): Promise<number> {
  return dispatch(argv, io, {
    help: HELP,
    commands: {
      pack: packCmd,
      keygen: keygenCmd,
      // Loaded on demand: it trains a model.
      'sample-model': async (rest, o) => (await import('./sample-model.js')).sampleModelCmd(rest, o),
      ...more,
      // Loaded on demand: serve pulls in the whole service.
      serve: async (rest, o) => (await import('./serve.js')).serveCmd(rest, o),
      // API commands: thin over fleet/edges/client (HTTP), loaded on demand like the rest.
      devices: async (rest, o) => (await import('./devices.js')).devicesCmd(rest, o),
      models: async (rest, o) => (await import('./models.js')).modelsCmd(rest, o),
      rollouts: async (rest, o) => (await import('./rollouts.js')).rolloutsCmd(rest, o),
      samples: async (rest, o) => (await import('./samples.js')).samplesCmd(rest, o),
      labels: async (rest, o) => (await import('./samples.js')).labelsCmd(rest, o),
      alerts: async (rest, o) => (await import('./alerts.js')).alertsCmd(rest, o),
      rules: async (rest, o) => (await import('./rules.js')).rulesCmd(rest, o),
      datasets: async (rest, o) => (await import('./datasets.js')).datasetsCmd(rest, o),
      train: async (rest, o) => (await import('./train.js')).trainCmd(rest, o),
      users: async (rest, o) => (await import('./users.js')).usersCmd(rest, o),
      aws: async (rest, o) => (await import('./aws.js')).awsCmd(rest, o),
    },
  });
}

export { PACK_HELP };
