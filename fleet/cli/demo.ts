import pino from 'pino';
import { numberFlag, parseFlags, type Io } from '../../shared/cli.js';
import { runDemo } from '../demo/run.js';

export const DEMO_HELP = `Usage: edgeloop demo [--data DIR] [--duration S] [--cameras N] [--rate N] [--drift-after S] [--json]

Runs the local demo: trains the base digit model once (cached in DIR), starts an embedded
MQTT broker with the fleet's sample sink, and starts N real agents watching camera folders
fed with handwritten digits. The last camera drifts (rotation, blur, dimming) after
--drift-after seconds: confidence drops and outliers flow back to the fleet.

  --data DIR        data directory (default .data/demo)
  --duration S      seconds to run, 0 = until Ctrl-C (default 0)
  --cameras N       agents to start (default 2)
  --rate N          images per second per camera (default 4)
  --drift-after S   seconds before the last camera drifts (default 20)
  --json            print one final JSON report as the last line`;

export async function demoCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(
    argv,
    { data: { type: 'string' }, duration: { type: 'string' }, cameras: { type: 'string' }, rate: { type: 'string' }, 'drift-after': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    DEMO_HELP,
  );
  if (values.help) {
    io.out(DEMO_HELP);
    return 0;
  }
  const abort = new AbortController();
  const onSignal = (): void => {
    io.err('stopping (Ctrl-C again to force)...');
    abort.abort();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  try {
    const report = await runDemo({
      dataDir: values.data ?? '.data/demo',
      durationS: numberFlag(values.duration, 'duration') ?? 0,
      cameras: Math.max(1, numberFlag(values.cameras, 'cameras') ?? 2),
      rate: Math.max(0.1, numberFlag(values.rate, 'rate') ?? 4),
      driftAfterS: numberFlag(values['drift-after'], 'drift-after') ?? 20,
      log: pino({ level: 'warn' }, pino.destination(2)),
      say: (l) => (values.json ? io.err(l) : io.out(l)),
      signal: abort.signal,
    });
    if (values.json) io.out(JSON.stringify(report));
    else {
      io.out('demo report:');
      for (const c of report.cameras) {
        const pct = (x: number | null): string => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
        io.out(`  ${c.device_id}: ${c.results}/${c.fed} frames, accuracy ${pct(c.accuracy_before_drift)}${c.drifting ? `, during drift ${pct(c.accuracy_during_drift)}` : ''}, ${c.captured} outliers captured`);
      }
      io.out(`  samples: ${report.samples.captured} captured, ${report.samples.received} received by the fleet, ${report.samples.lost} lost, ${report.samples.backlog} still queued`);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
  }
}
