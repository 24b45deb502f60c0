import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../fleet/demo/agent-process.js';
import { runsFromSource, tsxNodeArgs } from '../shared/ts-entry.js';

/** The URLs `edgeloop serve --json` printed on its ready line. */
export interface FleetUrls {
  http: string;
  mqtt: string;
}

/**
 * The fleet service as a real process (`edgeloop serve --json`), so it can be SIGKILLed. The
 * embedded MQTT broker lives inside it: killing the fleet also kills the broker. A restart
 * reuses the data directory and the ports the first start picked, so agents and cameras find
 * it where it was.
 */
export class FleetProcess {
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private ports: { http: number; mqtt: number } = { http: 0, mqtt: 0 };
  /** The fleet's log lines (stderr), last 200, for a failure report. */
  readonly logTail: string[] = [];
  urls: FleetUrls | null = null;

  /** `compiled`: start dist/ (after `npm run build`), which starts faster than the sources through tsx. */
  constructor(
    readonly dataDir: string,
    private readonly compiled = false,
  ) {}

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Start (or restart) and resolve with the URLs once it is ready. */
  async start(): Promise<FleetUrls> {
    const root = packageRoot();
    const entry = runsFromSource(import.meta.url) && !this.compiled ? [...tsxNodeArgs(import.meta.url), join(root, 'fleet', 'main.ts')] : [join(root, 'bin', 'edgeloop.js')];
    const args = [...entry, 'serve', '--data', this.dataDir, '--http-port', String(this.ports.http), '--mqtt-port', String(this.ports.mqtt), '--json', '--log-format', 'json'];
    const proc = spawn(process.execPath, args, { env: { ...process.env, EDGELOOP_LOG_LEVEL: process.env.EDGELOOP_LOG_LEVEL ?? 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const reap = (): void => void (proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'));
    process.once('exit', reap);
    this.exited = new Promise((r) =>
      proc.once('exit', () => {
        process.off('exit', reap);
        r();
      }),
    );
    createInterface({ input: proc.stderr! }).on('line', (l) => {
      this.logTail.push(l);
      if (this.logTail.length > 200) this.logTail.shift();
    });
    const urls = await new Promise<FleetUrls>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (l) => {
        try {
          const msg = JSON.parse(l) as { event?: string } & FleetUrls;
          if (msg.event === 'ready') resolve({ http: msg.http, mqtt: msg.mqtt });
        } catch {
          /* not the ready line */
        }
      });
      void this.exited.then(() => reject(new Error(`the fleet exited before it was ready:\n${this.logTail.slice(-5).join('\n')}`)));
    });
    this.ports = { http: Number(new URL(urls.http).port), mqtt: Number(new URL(urls.mqtt).port) };
    this.urls = urls;
    return urls;
  }

  /** Stop it: SIGKILL for a crash, SIGTERM for a clean stop. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.running) this.proc!.kill(signal);
    await this.exited;
  }
}
