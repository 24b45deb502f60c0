/** Process entry of `npm run chaos` (chaos/command.ts holds the command, which tests call). */
import '../shared/no-telemetry.js';
import { processIo, runMain } from '../shared/cli.js';
import { chaosCmd } from './command.js';

runMain((argv) => chaosCmd(argv, processIo));
