/** Process entry for `edgeloop` (bin/ loads the compiled twin of this file). */
import { runMain } from '../../shared/cli.js';
import { main } from './main.js';

runMain(main);
