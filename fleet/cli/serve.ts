import pino from 'pino';
import { numberFlag, parseFlags, type Io } from '../../shared/cli.js';
import { startFleetService } from '../service.js';

export const SERVE_HELP = `Usage: edgeloop serve [--data DIR] [--http-port N] [--mqtt-port N] [--host H] [--broker-url URL] [--json]

Starts the fleet service: HTTP API and web console, an embedded MQTT broker for devices
(per-device credentials and topic namespaces), SQLite state and a content-addressed
artifact directory in DIR. Port 0 picks a free port; the chosen ports are printed.
On first start an admin token is written to DIR/admin.token (and printed once).

  --data DIR         data directory (default .data/fleet)
  --http-port N      HTTP port (default 8600)
  --mqtt-port N      MQTT port of the embedded broker (default 1883)
  --host H           listen address (default 127.0.0.1)
  --broker-url URL   use an external MQTT broker instead of the embedded one
  --json             print the URLs as one JSON line`;

export async function serveCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(
    argv,
    { data: { type: 'string' }, 'http-port': { type: 'string' }, 'mqtt-port': { type: 'string' }, host: { type: 'string' }, 'broker-url': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    SERVE_HELP,
  );
  if (values.help) {
    io.out(SERVE_HELP);
    return 0;
  }
  const log = pino({ level: process.env.EDGELOOP_LOG_LEVEL ?? 'info' }, pino.destination(2));
  const { createFleetHttp } = await import('../http/server.js');
  const svc = await startFleetService({
    dataDir: values.data ?? '.data/fleet',
    httpPort: numberFlag(values['http-port'], 'http-port') ?? 8600,
    mqttPort: numberFlag(values['mqtt-port'], 'mqtt-port') ?? 1883,
    host: values.host ?? '127.0.0.1',
    ...(values['broker-url'] ? { brokerUrl: values['broker-url'] } : {}),
    http: createFleetHttp,
    log,
  });
  if (values.json) io.out(JSON.stringify({ event: 'ready', http: svc.urls.http, mqtt: svc.urls.mqtt, console: `${svc.urls.http}/console/` }));
  else {
    io.out(`fleet service ready`);
    io.out(`  console  ${svc.urls.http}/console/`);
    io.out(`  API      ${svc.urls.http}/v1  (OpenAPI at ${svc.urls.http}/v1/openapi.json)`);
    io.out(`  MQTT     ${svc.urls.mqtt}`);
    if (svc.adminToken) io.out(`  admin token (also in ${values.data ?? '.data/fleet'}/admin.token): ${svc.adminToken}`);
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      svc.stop().then(resolve, resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
