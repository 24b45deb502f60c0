import type { Logger } from 'pino';
import { errorLine } from '../../shared/errors.js';
import type { Clock } from '../../shared/ids.js';
import { desiredFromComponent, modelRefString, ruleSetFromComponent, type ComponentRuleSet, type DesiredState, type RuleSetMessage } from '../../shared/schemas/index.js';
import { AgentError } from '../errors.js';
import { settingsFromComponent, configurationProblem } from './config.js';
import type { GreengrassEnv } from './env.js';
import { ConfigurationValidityStatus, ipcErrorText, ReportedLifecycleState, type IpcClient } from './ipc-client.js';

/** What the component runtime needs from the agent (narrow, so tests can drive it). */
export interface ComponentHost {
  deviceId: string;
  applyDesiredState(d: DesiredState): Promise<void>;
  /** A rule-set message from the `rule_set` key: checked and applied like the retained MQTT one (never rejects). */
  applyRuleSet(m: RuleSetMessage): Promise<void>;
  busy(): { inference: number; switches: number };
  checkpointQueue(): void;
}

export interface GreengrassComponentOptions {
  client: IpcClient;
  env: Pick<GreengrassEnv, 'thingName'>;
  host: ComponentHost;
  log: Logger;
  clock: Clock;
  /** Working directory (the component's `{work:path}`), to resolve relative paths when validating. */
  workDir: string;
  /** The `agent` subtree the agent started with, to tell that a later change needs a restart. */
  startedAgentKey: string;
  /** How long to ask the nucleus to wait before asking again while work is in flight. Default 1000. */
  recheckAfterMs?: number;
}

interface Closable {
  close(): Promise<void>;
}

const ipcFailed = (what: string, cause: unknown): AgentError => new AgentError('GREENGRASS_IPC_FAILED', `${what} failed: ${ipcErrorText(cause)}`, { cause });

/**
 * The agent as a Greengrass component, over the nucleus' IPC:
 * - the desired model comes from the component configuration (`desired`): at start and on
 *   every `SubscribeToConfigurationUpdate` event, it goes to the deployment controller like
 *   an MQTT desired state; the alert rule set (`rule_set`) likewise goes to the agent's fleet
 *   rule sets like the retained `rules` message;
 * - `SubscribeToValidateConfigurationUpdates`: a deployment whose configuration does not
 *   validate is answered REJECTED with every bad key named, before anything changes;
 * - `SubscribeToComponentUpdates`: while inference requests or a model switch are in flight,
 *   `DeferComponentUpdate` asks the nucleus to come back in `recheckAfterMs`; once idle, the
 *   queue is checkpointed and the update acknowledged (`recheckAfterMs: 0`);
 * - `UpdateState` RUNNING once the agent serves, ERRORED when it cannot run.
 */
export class GreengrassComponent {
  private readonly log: Logger;
  private readonly ops: Closable[] = [];
  private closed = false;

  constructor(private readonly o: GreengrassComponentOptions) {
    this.log = o.log.child({ component: 'greengrass' });
  }

  /** Subscribe to the nucleus' events, apply the configured desired model, report RUNNING. */
  async start(initialDesired: ReturnType<typeof settingsFromComponent>['desired'], byModel: ReturnType<typeof settingsFromComponent>['desiredByModel'] = [], initialRuleSet: ComponentRuleSet | null = null): Promise<void> {
    await this.subscribeValidation();
    await this.subscribeConfiguration();
    await this.subscribeComponentUpdates();
    // `desired` is the first slot's (older fleets write only it); each slot dedupes by revision.
    if (initialDesired) this.apply(initialDesired, 'start');
    for (const d of byModel) this.apply(d, 'start');
    if (initialRuleSet) this.applyRules(initialRuleSet, 'start');
    await this.setState('RUNNING');
  }

  async setState(state: 'RUNNING' | 'ERRORED'): Promise<void> {
    try {
      await this.o.client.updateState({ state: ReportedLifecycleState[state] });
      this.log.info({ state }, 'lifecycle state reported to the nucleus');
    } catch (err) {
      throw ipcFailed(`UpdateState ${state}`, err);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.ops.splice(0).map((op) => op.close().catch(() => undefined)));
  }

  private apply(desired: NonNullable<ReturnType<typeof settingsFromComponent>['desired']>, why: string): void {
    const d = desiredFromComponent(desired, this.o.host.deviceId, new Date(this.o.clock.now()));
    this.log.info({ revision: d.revision, model_slot: d.model_name, active: d.active ? modelRefString(d.active.model) : null, shadow: d.shadow ? modelRefString(d.shadow.model) : null, why }, 'desired model from the component configuration');
    this.o.host.applyDesiredState(d).catch((err: unknown) => this.log.error({ reason: errorLine(err), revision: d.revision }, 'desired model from the component configuration not applied'));
  }

  /** The `rule_set` key: to the agent's fleet rule sets (same checks and ordering by revision as the MQTT topic). */
  private applyRules(r: ComponentRuleSet, why: string): void {
    const m = ruleSetFromComponent(r, this.o.host.deviceId, new Date(this.o.clock.now()));
    this.log.info({ revision: m.revision, rule_set: m.rule_set ? `${m.rule_set.name}@${m.rule_set.version}` : null, why }, 'rule set from the component configuration');
    void this.o.host.applyRuleSet(m);
  }

  private async subscribeValidation(): Promise<void> {
    const op = this.o.client.subscribeToValidateConfigurationUpdates({});
    op.on('message', (m) => {
      const ev = m.validateConfigurationUpdateEvent;
      if (!ev) return;
      const problem = configurationProblem(ev.configuration, this.o.env, this.o.workDir);
      const status = problem ? ConfigurationValidityStatus.REJECTED : ConfigurationValidityStatus.ACCEPTED;
      if (problem) this.log.warn({ deployment: ev.deploymentId, reason: problem, code: 'AGENT_GREENGRASS_CONFIG_INVALID' }, 'deployment configuration rejected');
      else this.log.info({ deployment: ev.deploymentId }, 'deployment configuration accepted');
      this.o.client
        .sendConfigurationValidityReport({ configurationValidityReport: { deploymentId: ev.deploymentId, status, ...(problem ? { message: problem.slice(0, 2000) } : {}) } })
        .catch((err: unknown) => this.log.error({ deployment: ev.deploymentId, reason: ipcErrorText(err) }, 'could not send the configuration validity report'));
    });
    await this.activate(op, 'SubscribeToValidateConfigurationUpdates');
  }

  private async subscribeConfiguration(): Promise<void> {
    const op = this.o.client.subscribeToConfigurationUpdate({ keyPath: [] });
    op.on('message', () => void this.reloadConfiguration());
    await this.activate(op, 'SubscribeToConfigurationUpdate');
  }

  private async reloadConfiguration(): Promise<void> {
    if (this.closed) return;
    let raw: unknown;
    try {
      raw = (await this.o.client.getConfiguration({ keyPath: [] })).value;
    } catch (err) {
      this.log.error({ reason: ipcErrorText(err), code: 'AGENT_GREENGRASS_IPC_FAILED' }, 'GetConfiguration after an update failed');
      return;
    }
    let settings: ReturnType<typeof settingsFromComponent>;
    try {
      settings = settingsFromComponent(raw, this.o.env, { workDir: this.o.workDir });
    } catch (err) {
      // Validation should have rejected it; a configuration set without a deployment (local CLI) can still get here.
      this.log.error({ reason: errorLine(err), code: 'AGENT_GREENGRASS_CONFIG_INVALID' }, 'updated component configuration is invalid; ignored');
      return;
    }
    if (settings.agentKey !== this.o.startedAgentKey) this.log.warn('agent settings changed; applied at the next restart of the component');
    if (settings.desired) this.apply(settings.desired, 'configuration update');
    for (const d of settings.desiredByModel) this.apply(d, 'configuration update');
    if (settings.ruleSet) this.applyRules(settings.ruleSet, 'configuration update');
  }

  private async subscribeComponentUpdates(): Promise<void> {
    const op = this.o.client.subscribeToComponentUpdates({});
    op.on('message', (m) => {
      const pre = m.preUpdateEvent;
      if (pre) void this.onPreUpdate(pre.deploymentId);
      if (m.postUpdateEvent) this.log.info({ deployment: m.postUpdateEvent.deploymentId }, 'component update finished');
    });
    await this.activate(op, 'SubscribeToComponentUpdates');
  }

  private async onPreUpdate(deploymentId: string): Promise<void> {
    const busy = this.o.host.busy();
    const waitMs = this.o.recheckAfterMs ?? 1000;
    let recheckAfterMs = 0;
    let message: string;
    if (busy.inference > 0 || busy.switches > 0) {
      recheckAfterMs = waitMs;
      message = `${busy.inference} inference request(s) and ${busy.switches} model switch(es) in flight`;
      this.log.info({ deployment: deploymentId, ...busy, recheckAfterMs }, 'component update deferred until in-flight work finishes');
    } else {
      try {
        this.o.host.checkpointQueue();
        message = 'idle; queue checkpointed';
        this.log.info({ deployment: deploymentId }, 'component update acknowledged; queue checkpointed');
      } catch (err) {
        // A storage failure must not block the update forever: the queue's committed rows are safe without the checkpoint.
        message = `idle; queue checkpoint failed: ${errorLine(err)}`;
        this.log.error({ deployment: deploymentId, reason: errorLine(err) }, 'queue checkpoint before the update failed; acknowledging anyway');
      }
    }
    try {
      await this.o.client.deferComponentUpdate({ deploymentId, message, recheckAfterMs });
    } catch (err) {
      this.log.error({ deployment: deploymentId, reason: ipcErrorText(err), code: 'AGENT_GREENGRASS_IPC_FAILED' }, 'DeferComponentUpdate failed');
    }
  }

  private async activate(op: Closable & { activate(): Promise<unknown>; on(e: 'streamError', fn: (err: unknown) => void): unknown }, name: string): Promise<void> {
    op.on('streamError', (err) => this.log.warn({ op: name, reason: ipcErrorText(err) }, 'IPC stream error'));
    try {
      await op.activate();
    } catch (err) {
      throw ipcFailed(name, err);
    }
    this.ops.push(op);
  }
}
