import pino from 'pino';
import { numberFlag, parseFlags, type Io } from '../../shared/cli.js';
import { sharedError } from '../../shared/errors.js';
import { createLogger } from '../../shared/log.js';
import { DEFAULT_TIMINGS, type DemoTimings } from './options.js';
import { figure, metricName } from './report.js';
import { runDemo } from './run.js';

export const DEMO_HELP = `Usage: edgeloop demo [--scene classification|detection] [--data DIR] [--http-port N] [--human-labels] [--exit-when-done] [--json] [timings]

The whole learning loop on one machine: the fleet service (HTTP API, console, embedded MQTT
broker), six real agents at three sites (pit-3, ridge-1, plant-2) watching camera folders fed
with handwritten digits, a base model trained once (cached in DIR) and rolled out. Then the
pit-3 cameras drift, ridge-1 loses its uplink for a while, labels come back (from a simulated
labeler that knows the fed frames' ground truth, or from people with --human-labels), a
retrained model is rolled out shadow -> canary -> waves, and pit-3 recovers. The console URL
is printed first; without --exit-when-done the demo keeps running until Ctrl-C.

  --scene NAME        classification (default) or detection: the same loop for a detector, with
                      scenes of 1-4 digits per frame, box labels, the gate on mAP, and every figure
                      mAP@0.5 (docs/demo.md; defaults --label-budget 250, --retrain-after 150,
                      --after-frames 50)
  --data DIR          data directory (default .data/demo); fleet and device state are fresh each run
  --http-port N       console/API port (default 0 = a free port, printed)
  --human-labels      wait for people on the labeling page instead of the simulated labeler
  --exit-when-done    stop and report once pit-3 recovered
  --json              progress on stderr, one final JSON report as the last line of stdout

Timings (seconds unless named):
  --rate N            images per second per camera (default ${DEFAULT_TIMINGS.rate})
  --baseline S        feeding before the drift (default ${DEFAULT_TIMINGS.baselineS})
  --outage-after S    ridge-1's uplink goes down this long after the drift onset (default ${DEFAULT_TIMINGS.outageAfterS})
  --outage S          ...for this long (default ${DEFAULT_TIMINGS.outageS})
  --label-rate N      simulated labels per second (default ${DEFAULT_TIMINGS.labelRate})
  --label-budget N    labels in all (default ${DEFAULT_TIMINGS.labelBudget})
  --retrain-after N   labels before a retrain (default ${DEFAULT_TIMINGS.retrainAfterLabels})
  --bake S            bake time of each stage of the retrained model's rollout (default ${DEFAULT_TIMINGS.canaryBakeS})
  --after-frames N    frames each pit-3 camera shows the new model before the loop counts as closed (default ${DEFAULT_TIMINGS.afterFrames})
  --max S             give up after this long and report (default: no limit)`;

export async function demoCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(
    argv,
    {
      data: { type: 'string' },
      scene: { type: 'string' },
      'http-port': { type: 'string' },
      'human-labels': { type: 'boolean' },
      'exit-when-done': { type: 'boolean' },
      json: { type: 'boolean' },
      rate: { type: 'string' },
      baseline: { type: 'string' },
      'outage-after': { type: 'string' },
      outage: { type: 'string' },
      'label-rate': { type: 'string' },
      'label-budget': { type: 'string' },
      'retrain-after': { type: 'string' },
      bake: { type: 'string' },
      'after-frames': { type: 'string' },
      max: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    DEMO_HELP,
  );
  if (values.help) {
    io.out(DEMO_HELP);
    return 0;
  }
  const timings: Partial<DemoTimings> = {};
  const num = (flag: keyof typeof values, key: keyof DemoTimings): void => {
    const v = numberFlag(values[flag] as string | undefined, flag);
    if (v !== undefined) timings[key] = v;
  };
  num('rate', 'rate');
  num('baseline', 'baselineS');
  num('outage-after', 'outageAfterS');
  num('outage', 'outageS');
  num('label-rate', 'labelRate');
  num('label-budget', 'labelBudget');
  num('retrain-after', 'retrainAfterLabels');
  num('bake', 'canaryBakeS');
  num('bake', 'shadowBakeS');
  num('bake', 'waveBakeS');
  num('after-frames', 'afterFrames');
  num('max', 'maxS');

  const scene = values.scene ?? 'classification';
  if (scene !== 'classification' && scene !== 'detection') throw sharedError('USAGE', `--scene is classification or detection, got ${scene}\n\n${DEMO_HELP}`);

  const abort = new AbortController();
  const onSignal = (): void => {
    io.err('stopping: draining the queues so nothing is lost (Ctrl-C again to force)...');
    abort.abort();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const report = await runDemo({
      scene,
      dataDir: values.data ?? '.data/demo',
      ...(values['http-port'] !== undefined ? { httpPort: numberFlag(values['http-port'], 'http-port')! } : {}),
      timings,
      humanLabels: values['human-labels'] === true,
      exitWhenDone: values['exit-when-done'] === true,
      log: createLogger(process.env.EDGELOOP_LOG_LEVEL ?? 'error', pino.destination(2)),
      say: (l) => (values.json ? io.err(l) : io.out(l)),
      signal: abort.signal,
    });
    if (values.json) io.out(JSON.stringify(report));
    else {
      const f = (x: number | null | undefined): string => figure(report.metric, x);
      io.out(`demo report (${report.scene}):`);
      for (const [site, a] of Object.entries(report.sites)) {
        io.out(`  ${site.padEnd(8)} ${metricName(report.metric)} before drift ${f(a.before_drift)}  during drift ${f(a.during_drift)}  new model ${f(a.after_new_model)}`);
      }
      const s = report.samples;
      io.out(`  samples: ${s.captured} captured, ${s.forwarded} forwarded, ${s.received} received, ${s.lost} lost, ${s.backlog} still queued`);
      if (report.outage) io.out(`  ${report.outage.site} outage ${report.outage.duration_s.toFixed(0)}s: ${report.outage.captured_during} captured meanwhile, ${report.outage.received_from_window} arrived after, ${report.outage.lost} lost`);
      io.out(`  labels used: ${report.labels.used}${report.labels.boxes !== null ? ` (${report.labels.boxes} boxes)` : ''} (${report.labels.simulated ? 'simulated labeler' : 'people'})`);
      if (report.new_model) io.out(`  new model ${report.new_model.name}@${report.new_model.version}: clean ${f(report.new_model.clean)} (${report.new_model.clean_delta_points?.toFixed(1) ?? '-'} points)`);
      io.out(`  recovery: ${report.recovery_s === null ? 'not reached' : `${report.recovery_s.toFixed(0)}s after the drift onset`}`);
      for (const p of report.problems) io.out(`  problem: ${p}`);
    }
    return report.ok || !values['exit-when-done'] ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
