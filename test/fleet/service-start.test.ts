import { createServer, type Server } from 'node:http';
import { createConnection, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { startFleetService } from '../../fleet/boot/service.js';
import { Teardown } from '../../fleet/boot/teardown.js';
import { tempDir } from '../helpers/packages.js';

const quiet = pino({ level: 'silent' });

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves true when something accepts a TCP connection on the port, false when refused. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

describe('Teardown', () => {
  it('stops in the reverse order of start, runs every step though one fails, and rethrows the first failure', async () => {
    const seen: string[] = [];
    const t = new Teardown(quiet);
    t.push('a', () => void seen.push('a'));
    t.push('b', () => {
      seen.push('b');
      throw new Error('b failed');
    });
    t.push('c', async () => void seen.push('c'));
    await expect(t.run()).rejects.toThrow('b failed');
    expect(seen).toEqual(['c', 'b', 'a']);
  });

  it('a failed start releases what the steps before it opened, then rethrows', async () => {
    const seen: string[] = [];
    const t = new Teardown(quiet);
    await expect(
      t.start(async () => {
        t.push('db', () => void seen.push('db closed'));
        t.push('broker', () => void seen.push('broker closed'));
        throw new Error('http port taken');
      }),
    ).rejects.toThrow('http port taken');
    expect(seen).toEqual(['broker closed', 'db closed']);
  });
});

describe('fleet service start', () => {
  it('a start that fails at its HTTP step releases the broker and the database: the same ports and data start again', async () => {
    const tmp = tempDir('edgeloop-start-fail-');
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as AddressInfo).port;
    const mqttPort = await freePort();
    const dataDir = join(tmp.dir, 'fleet');
    try {
      const http = (): Server => createServer((_req, res) => res.writeHead(404).end());
      await expect(startFleetService({ dataDir, mqttPort, httpPort: taken, log: quiet, http })).rejects.toThrow(/EADDRINUSE/);
      // The embedded broker that had started is closed again...
      expect(await listening(mqttPort)).toBe(false);
      // ...and the same data directory and broker port serve a new start.
      const svc = await startFleetService({ dataDir, mqttPort, log: quiet, http });
      try {
        expect(await listening(mqttPort)).toBe(true);
        expect(svc.ctx.users.count()).toBe(1);
      } finally {
        await svc.stop();
      }
      expect(await listening(mqttPort)).toBe(false);
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
      tmp.cleanup();
    }
  });
});
