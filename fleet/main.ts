/** Process entry for `edgeloop` (bin/ loads the compiled twin of this file). */
import '../shared/no-telemetry.js';
import { runMain } from '../shared/cli.js';
import { main } from './edges/cli/main.js';

// The demo sits above every other layer (it drives the service, agents and trainer), so the
// entry wires its command in; loaded on demand, it pulls in the trainer and the dataset.
runMain((argv) => main(argv, undefined, { demo: async (rest, io) => (await import('./demo/command.js')).demoCmd(rest, io) }));
