import { readFile } from 'node:fs/promises';
import { numberFlag, parseFlags, type Io } from '../../../shared/cli.js';
import { createLogger, LOG_FORMATS, logDestination, resolveLogFormat } from '../../../shared/log.js';
import { FleetError } from '../../errors.js';
import { startFleetService, type ServeOptions } from '../../boot/service.js';
import type { Trainer } from '../../app/training/trainer.js';

export const SERVE_HELP = `Usage: edgeloop serve [--data DIR] [--http-port N] [--mqtt-port N] [--mqtts-port N] [--host H] [--broker-url URL]
                      [--ca-cert FILE --ca-key FILE]
                      [--backend mqtt|aws --aws-config FILE [--dry-run]] [--training FILE]
                      [--limits FILE] [--notify-rate N] [--log-format auto|json|pretty] [--json]

Starts the fleet service: HTTP API and web console, an embedded MQTT broker for devices
(per-device credentials and topic namespaces), SQLite state and a content-addressed
artifact directory in DIR. Port 0 picks a free port; the chosen ports are printed.
On first start an admin token is written to DIR/admin.token (and printed once).

  --data DIR         data directory (default .data/fleet)
  --http-port N      HTTP port (default 8600)
  --mqtt-port N      MQTT port of the embedded broker (default 1883)
  --mqtts-port N     MQTT-over-TLS port of the embedded broker, where devices log in with a
                     certificate from the fleet CA (edgeloop devices register --cert); 0 = off
                     (default)
  --ca-cert F        the fleet CA certificate (PEM) to certify devices with; default
                     DATA/keys/ca.cert.pem, made on first start
  --ca-key F         its private key (PEM); goes with --ca-cert
  --host H           listen address (default 127.0.0.1)
  --broker-url URL   use an external MQTT broker instead of the embedded one
  --broker-cert F    client certificate (PEM) for the external broker (AWS IoT Core: mutual TLS)
  --broker-key F     its private key (PEM)
  --broker-ca F      CA bundle (PEM) for the external broker
  --backend B        rollout backend: mqtt (default, desired state over MQTT) or aws
                     (Greengrass v2 deployments to thing groups, artifacts and samples on S3)
  --aws-config F     AWS mode configuration (JSON; see the README, "Fleet on AWS")
  --dry-run          with --backend aws: send nothing to AWS, print every call it would make
                     (one JSON line each, {"dry_run":true,"service","command","input"})
  --training F       run the learning loop: models, trainer per model (local, command, and
                     sagemaker with --backend aws), base sets, triggers, gate, auto_promote
                     (JSON; see the README, "The learning loop"); validated before anything starts
  --limits F         limits on what devices may send and make the fleet hold: sample size,
                     rate and daily bytes per device, unfinished chunked samples, MQTT packet
                     size (JSON; see docs/configuration.md); validated before anything starts
  --notify-rate N    desired states published per second at most, so a large wave reaches its
                     devices evenly (like IoT Jobs' maximumPerMinute); default no limit
  --log-format F     auto (default; also $EDGELOOP_LOG_FORMAT): readable log lines when stderr
                     is a terminal, pino JSON (one object a line) otherwise; json or pretty
                     force one
  --json             print the URLs as one JSON line

Output: stdout carries what the command reports, and only that: the banner (URLs, the admin
token) or, with --json, JSON lines (the ready line, and with --dry-run one line per AWS call).
Logs go to stderr (level: $EDGELOOP_LOG_LEVEL, default info).`;

/** Why a trainer is missing from the table, for the training file's validation error. */
const TRAINER_HINTS = { sagemaker: 'the sagemaker trainer needs --backend aws and a sagemaker section in --aws-config' } as const;

export async function serveCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(
    argv,
    {
      data: { type: 'string' },
      'http-port': { type: 'string' },
      'mqtt-port': { type: 'string' },
      'mqtts-port': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      host: { type: 'string' },
      'broker-url': { type: 'string' },
      'broker-cert': { type: 'string' },
      'broker-key': { type: 'string' },
      'broker-ca': { type: 'string' },
      backend: { type: 'string' },
      'aws-config': { type: 'string' },
      'dry-run': { type: 'boolean' },
      training: { type: 'string' },
      'notify-rate': { type: 'string' },
      limits: { type: 'string' },
      'log-format': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    SERVE_HELP,
  );
  if (values.help) {
    io.out(SERVE_HELP);
    return 0;
  }
  const requested = values['log-format'] ?? process.env.EDGELOOP_LOG_FORMAT ?? 'auto';
  if (!(LOG_FORMATS as readonly string[]).includes(requested)) throw new FleetError('USAGE', `--log-format must be one of ${LOG_FORMATS.join(', ')}, got ${requested}`);
  const errTTY = process.stderr.isTTY === true;
  const log = createLogger(process.env.EDGELOOP_LOG_LEVEL ?? 'info', logDestination(resolveLogFormat(requested, errTTY), 2, errTTY));
  const { createFleetHttp } = await import('../server.js');
  const backend = values.backend ?? 'mqtt';
  if (backend !== 'mqtt' && backend !== 'aws') throw new FleetError('USAGE', `--backend must be mqtt or aws, got ${backend}`);
  if (values['dry-run'] && backend !== 'aws') throw new FleetError('USAGE', '--dry-run applies to --backend aws');
  const notifyPerSecond = numberFlag(values['notify-rate'], 'notify-rate');
  if (notifyPerSecond !== undefined && !(notifyPerSecond > 0)) throw new FleetError('USAGE', `--notify-rate must be a positive number of desired states per second, got ${values['notify-rate']}`);
  let aws: Pick<ServeOptions, 'artifacts' | 'rolloutBackend'> = {};
  let extraTrainers: Readonly<Record<string, Trainer>> = {};
  if (backend === 'aws') {
    if (!values['aws-config']) throw new FleetError('USAGE', '--backend aws needs --aws-config FILE');
    const { loadAwsConfig } = await import('../../adapters/aws/aws-config.js');
    const { awsServeParts, awsTrainers } = await import('../../boot/aws.js');
    const cfg = await loadAwsConfig(values['aws-config']);
    const parts = awsServeParts({
      cfg,
      dataDir: values.data ?? '.data/fleet',
      dryRun: values['dry-run'] === true,
      // JSON lines with --json; a person reading the banner gets sentences, not JSON between them.
      printCall: (c) => io.out(values.json ? JSON.stringify({ dry_run: true, ...c }) : `dry run: would call ${c.service} ${c.command} ${JSON.stringify(c.input)}`),
    });
    aws = parts;
    extraTrainers = awsTrainers(cfg, { dryRun: values['dry-run'] === true });
  }
  let training: ServeOptions['training'];
  if (values.training) {
    const { loadTrainingConfig, trainingSetup } = await import('../../boot/training-config.js');
    const file = await loadTrainingConfig(values.training, { extraTrainers: Object.keys(extraTrainers), hint: TRAINER_HINTS });
    training = trainingSetup(file, extraTrainers);
  }
  const limits = values.limits ? await (await import('../../boot/limits-config.js')).loadLimitsConfig(values.limits) : undefined;
  const pem = async (f: string | undefined): Promise<string | undefined> => (f === undefined ? undefined : readFile(f, 'utf8'));
  const [cert, key, ca] = await Promise.all([pem(values['broker-cert']), pem(values['broker-key']), pem(values['broker-ca'])]);
  if ((cert === undefined) !== (key === undefined)) throw new FleetError('USAGE', '--broker-cert and --broker-key go together');
  if ((values['ca-cert'] === undefined) !== (values['ca-key'] === undefined)) throw new FleetError('USAGE', '--ca-cert and --ca-key go together');
  const mqttsPort = numberFlag(values['mqtts-port'], 'mqtts-port') ?? 0;
  if (mqttsPort && values['broker-url']) throw new FleetError('USAGE', '--mqtts-port is a listener of the embedded broker; it does not go with --broker-url');
  const svc = await startFleetService({
    ...aws,
    ...(training ? { training } : {}),
    ...(limits ? { limits } : {}),
    ...(cert !== undefined && key !== undefined ? { brokerTls: { cert, key, ...(ca !== undefined ? { ca } : {}) } } : {}),
    dataDir: values.data ?? '.data/fleet',
    httpPort: numberFlag(values['http-port'], 'http-port') ?? 8600,
    mqttPort: numberFlag(values['mqtt-port'], 'mqtt-port') ?? 1883,
    ...(mqttsPort ? { mqttsPort } : {}),
    ...(values['ca-cert'] && values['ca-key'] ? { ca: { certFile: values['ca-cert'], keyFile: values['ca-key'] } } : {}),
    host: values.host ?? '127.0.0.1',
    ...(values['broker-url'] ? { brokerUrl: values['broker-url'] } : {}),
    ...(notifyPerSecond !== undefined ? { notifyPerSecond } : {}),
    http: createFleetHttp,
    log,
  });
  if (values.json) io.out(JSON.stringify({ event: 'ready', http: svc.urls.http, mqtt: svc.urls.mqtt, ...(svc.urls.mqtts ? { mqtts: svc.urls.mqtts } : {}), console: `${svc.urls.http}/console/` }));
  else {
    io.out(`fleet service ready`);
    io.out(`  console  ${svc.urls.http}/console/`);
    io.out(`  API      ${svc.urls.http}/v1  (OpenAPI at ${svc.urls.http}/v1/openapi.json)`);
    io.out(`  MQTT     ${svc.urls.mqtt}`);
    if (svc.urls.mqtts) io.out(`  MQTTS    ${svc.urls.mqtts}  (device certificates from the fleet CA)`);
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
