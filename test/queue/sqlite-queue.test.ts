import path from 'node:path';
import { afterAll } from 'vitest';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import { makeTempDir } from './helpers.js';
import { queueContract } from './queue-contract.js';

// One real temp file per queue the contract makes; the contract closes them, this removes them.
const tmp = makeTempDir('sqlite-contract');
let n = 0;
afterAll(() => tmp.remove());

queueContract('sqlite', (opts) => openSqliteQueue({ ...opts, path: path.join(tmp.dir, `q${n++}.db`) }));
