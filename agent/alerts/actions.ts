import { execFile } from 'node:child_process';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { AlertAction, AlertRecord, AlertRuleSet } from '../../shared/schemas/index.js';
import { errorLine } from '../../shared/errors.js';
import { AgentError } from '../errors.js';
import type { Firing } from '../../shared/alerts/engine.js';
import type { AlertTarget } from './pipeline.js';
import { ActionRunner, type Attempt, type Delay } from './runner.js';
import { renderTemplate } from './template.js';

/** Publish on Greengrass local pub/sub (given in Greengrass mode only). */
export type IpcPublish = (topic: string, payload: Buffer) => Promise<void>;

export interface ActionDeps {
  log: Logger;
  deviceId: string;
  ipcPublish?: IpcPublish | undefined;
  delay?: Delay;
}

/** Largest stdout/stderr a command action may write (the rest is cut; it is only logged). */
const COMMAND_OUTPUT_BYTES = 64 * 1024;

/**
 * The actions of a rule set, each behind its own bounded runner: a fired rule hands its alert
 * to every action it names and returns at once. Site brokers are connected at start and kept
 * connected (reconnecting on their own); an alert while the site broker is down fails fast
 * (`AGENT_ALERT_ACTION_FAILED`, retried per `retries`) instead of piling up in the client.
 * None of this needs the fleet: actions fire the same with the uplink down.
 */
export class AlertActions implements AlertTarget {
  private readonly runners = new Map<string, ActionRunner<AlertRecord>>();
  private readonly brokers = new Map<string, MqttClient>();
  private readonly log: Logger;
  private readonly deviceId: string;

  private constructor(deps: ActionDeps) {
    this.log = deps.log.child({ component: 'alert-actions' });
    this.deviceId = deps.deviceId;
  }

  /**
   * Build every action; a `greengrass` action outside Greengrass mode, or one that cannot be
   * built (an `mqtt` URL the client refuses), is `AGENT_ALERT_RULES_INVALID`, and the site
   * connections the earlier actions opened are closed before it is thrown.
   */
  static create(set: Readonly<AlertRuleSet>, deps: ActionDeps): AlertActions {
    const a = new AlertActions(deps);
    const problems = Object.entries(set.actions)
      .filter(([, act]) => act.kind === 'greengrass' && !deps.ipcPublish)
      .map(([name]) => `actions.${name}.kind: greengrass actions need Greengrass mode (the agent runs as a component)`);
    if (problems.length) throw new AgentError('ALERT_RULES_INVALID', `alert rule set is invalid: ${problems.join('; ')}`, { details: { issues: problems } });
    for (const [name, act] of Object.entries(set.actions)) {
      const limits = { timeoutMs: act.timeout_ms, retries: act.retries, maxQueue: act.max_queue, concurrency: act.concurrency };
      try {
        a.runners.set(name, new ActionRunner(name, limits, a.attemptOf(name, act, deps), a.log, deps.delay));
      } catch (err) {
        // Nothing has been handed to the runners yet: only the site connections hold anything.
        for (const c of a.brokers.values()) c.end(true);
        const issue = `actions.${name}: ${errorLine(err)}`;
        throw new AgentError('ALERT_RULES_INVALID', `alert rule set is invalid: ${issue}`, { cause: err, details: { issues: [issue] } });
      }
    }
    return a;
  }

  fire(f: Firing): void {
    for (const name of f.rule.actions) this.runners.get(name)?.submit(f.record);
  }

  runner(name: string): ActionRunner<AlertRecord> | undefined {
    return this.runners.get(name);
  }

  /** Resolves when every action has finished what it was given. */
  async idle(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.idle()));
  }

  /** Per action: alerts waiting or running, and outcomes since start (health). */
  stats(): Record<string, { depth: number; ok: number; failed: number; timeout: number; overloaded: number }> {
    return Object.fromEntries([...this.runners].map(([name, r]) => [name, { depth: r.depth, ...r.counts }]));
  }

  /** Whether every site broker is connected (health). */
  brokersConnected(): boolean {
    return [...this.brokers.values()].every((c) => c.connected);
  }

  /** Let running actions finish (each within its timeout), then disconnect the site brokers. */
  async close(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.close()));
    await Promise.all([...this.brokers.values()].map((c) => c.endAsync(true).catch(() => undefined)));
  }

  private attemptOf(name: string, act: AlertAction, deps: ActionDeps): Attempt<AlertRecord> {
    switch (act.kind) {
      case 'mqtt': {
        const client = this.broker(name, act);
        return async (r) => {
          if (!client.connected) throw new AgentError('ALERT_ACTION_FAILED', `action ${name}: the site broker is not connected`);
          await client.publishAsync(renderTemplate(act.topic, r), renderTemplate(act.payload, r), { qos: act.qos, retain: act.retain });
        };
      }
      case 'webhook':
        return async (r, signal) => {
          const res = await fetch(act.url, { method: act.method, headers: { 'content-type': 'application/json', ...act.headers }, body: renderTemplate(act.body, r), signal });
          await res.body?.cancel().catch(() => undefined);
          if (!res.ok) throw new AgentError('ALERT_ACTION_FAILED', `action ${name}: the webhook answered ${res.status}`);
        };
      case 'command':
        return (r, signal) =>
          new Promise<void>((resolve, reject) => {
            // execFile, no shell: a templated label or camera name stays one argument, never a command.
            execFile(act.file, act.args.map((a) => renderTemplate(a, r)), { signal, maxBuffer: COMMAND_OUTPUT_BYTES, windowsHide: true }, (err, _out, stderr) => {
              if (!err) return resolve();
              if (signal.aborted) return reject(signal.reason as Error);
              const code = (err as NodeJS.ErrnoException & { code?: unknown }).code;
              reject(new AgentError('ALERT_ACTION_FAILED', `action ${name}: ${typeof code === 'number' ? `exited with ${code}` : err.message}${stderr ? `: ${String(stderr).trim().slice(0, 300)}` : ''}`, { cause: err }));
            });
          });
      case 'greengrass': {
        const publish = deps.ipcPublish!;
        return (r) => publish(renderTemplate(act.topic, r), Buffer.from(renderTemplate(act.payload, r)));
      }
    }
  }

  /** One connection per site broker (URL and user), shared by the actions that name it. */
  private broker(name: string, act: Extract<AlertAction, { kind: 'mqtt' }>): MqttClient {
    const key = `${act.url}\u0000${act.username ?? ''}`;
    let c = this.brokers.get(key);
    if (c) return c;
    c = mqtt.connect(act.url, {
      clientId: `${this.deviceId}-alerts-${this.brokers.size + 1}`,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      // Nothing is held for a broker that is down: the runner fails the attempt instead.
      queueQoSZero: false,
      ...(act.username ? { username: act.username } : {}),
      ...(act.password ? { password: act.password } : {}),
    });
    let up = false;
    c.on('connect', () => {
      if (!up) this.log.info({ action: name }, 'site broker connected');
      up = true;
    });
    c.on('offline', () => {
      if (up) this.log.warn({ action: name }, 'site broker connection lost; alerts fail until it returns');
      up = false;
    });
    c.on('error', () => undefined);
    this.brokers.set(key, c);
    return c;
  }
}
