import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GreengrassIpcUplink } from '../../agent/uplink/greengrass-ipc-uplink.js';
import { captureLogger } from '../uplink/fixtures/logger.js';
import { waitUntil } from '../uplink/fixtures/wait.js';
import { uplinkContract } from '../uplink/uplink-contract.js';
import { GreengrassIpcServer } from './ipc-server.js';

const dir = mkdtempSync(join(tmpdir(), 'gg-ipc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fastBackoff = { initialMs: 20, maxMs: 200 };

function uplink(server: GreengrassIpcServer, token = 'svcuid-test', logger = captureLogger('warn').logger): GreengrassIpcUplink {
  return new GreengrassIpcUplink({ endpoint: { socketPath: server.socketPath, authToken: token }, logger, backoff: fastBackoff });
}

// The same behaviour as the MQTT uplink, through the real SDK IPC client and the nucleus emulation.
uplinkContract('GreengrassIpcUplink on the local IPC server', async () => {
  const server = await GreengrassIpcServer.start({ socketPath: join(dir, `ipc-${++n}.sock`), svcuid: 'svcuid-test', componentName: 'com.edgeloop.Agent' });
  return { make: () => uplink(server), outage: () => server.outage(), recover: () => server.recover(), close: () => server.close() };
});

describe('GreengrassIpcUplink', () => {
  it('authenticates with SVCUID: a wrong token is refused at the handshake and it keeps retrying', async () => {
    const server = await GreengrassIpcServer.start({ socketPath: join(dir, `ipc-${++n}.sock`), svcuid: 'right', componentName: 'c' });
    const { logger, lines } = captureLogger('info');
    const u = uplink(server, 'wrong', logger);
    try {
      void u.connect();
      await waitUntil(() => server.refusedConnects.length >= 2, 5000, 'two refused connects');
      expect(u.isConnected()).toBe(false);
      expect(server.refusedConnects[0]).toBe('wrong');
      expect(lines.some((l) => l.msg === 'IPC connect failed; retrying after backoff')).toBe(true);
    } finally {
      await u.close();
      await server.close();
    }
  });

  it('maps the nucleus authorization (recipe accessControl) to clear errors: publish_failed and subscribe_refused', async () => {
    const server = await GreengrassIpcServer.start({
      socketPath: join(dir, `ipc-${++n}.sock`),
      svcuid: 'svcuid-test',
      componentName: 'c',
      mqttAcl: { publish: ['edgeloop/v1/devices/dev-1/#'], subscribe: ['edgeloop/v1/devices/dev-1/acks'] },
    });
    const u = uplink(server);
    try {
      await u.connect();
      await u.publish('edgeloop/v1/devices/dev-1/telemetry', Buffer.from('ok'));
      await expect(u.publish('edgeloop/v1/devices/dev-2/telemetry', Buffer.from('x'))).rejects.toMatchObject({ code: 'AGENT_UPLINK_PUBLISH_FAILED', message: expect.stringContaining('not authorized') });
      await expect(u.subscribe('edgeloop/v1/devices/+/acks', () => undefined)).rejects.toMatchObject({ code: 'AGENT_UPLINK_SUBSCRIBE_REFUSED' });
      await u.subscribe('edgeloop/v1/devices/dev-1/acks', () => undefined);
      expect(server.published.map((p) => p.topic)).toEqual(['edgeloop/v1/devices/dev-1/telemetry']);
      expect(server.published[0]?.qos).toBe('1');
    } finally {
      await u.close();
      await server.close();
    }
  });
});
