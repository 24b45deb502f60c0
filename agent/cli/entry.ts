/** Process entry for `edgeloop-agent` (bin/ loads the compiled twin of this file). */
import '../../shared/no-telemetry.js';
import { runMain } from '../../shared/cli.js';
import { main } from './main.js';

runMain(main);
