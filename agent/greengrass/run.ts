import type { DestinationStream, Logger } from 'pino';
import { errorLine } from '../../shared/errors.js';
import { systemClock, type Clock } from '../../shared/ids.js';
import { Agent } from '../agent.js';
import { AgentError } from '../errors.js';
import { createLogger } from '../../shared/log.js';
import { GreengrassIpcUplink } from '../uplink/greengrass-ipc-uplink.js';
import { GreengrassComponent } from './component.js';
import { GreengrassPubsubInput } from './pubsub-input.js';
import { settingsFromComponent } from './config.js';
import type { GreengrassEnv } from './env.js';
import { createIpcClient, ipcErrorText, ReportedLifecycleState, type IpcClient } from './ipc-client.js';

export interface GreengrassRunOptions {
  gg: Readonly<GreengrassEnv>;
  /** `EDGELOOP_AGENT_*` overrides (read once by the CLI). */
  env?: Record<string, string | undefined>;
  /** Optional agent.json contents, below the component configuration. */
  fileConfig?: Record<string, unknown>;
  /** The component's working directory (`{work:path}`, the process cwd under the nucleus). */
  workDir: string;
  logDestination?: DestinationStream;
  clock?: Clock;
  recheckAfterMs?: number;
}

export interface GreengrassRun {
  agent: Agent;
  component: GreengrassComponent;
  log: Logger;
  stop(): Promise<void>;
}

/**
 * Start the agent as a Greengrass component: connect to the nucleus, read the component
 * configuration (validated once), start the agent with the IPC uplink, follow configuration
 * and component updates, and report RUNNING. A failure after the IPC connection is up is
 * reported as ERRORED before it is thrown, so the deployment shows why.
 */
export async function startGreengrassAgent(o: GreengrassRunOptions): Promise<GreengrassRun> {
  const client: IpcClient = createIpcClient(o.gg);
  try {
    await client.connect();
  } catch (err) {
    await client.close().catch(() => undefined);
    throw new AgentError('GREENGRASS_IPC_FAILED', `cannot connect to the Greengrass nucleus at ${o.gg.socketPath}: ${ipcErrorText(err)}`, { cause: err });
  }
  let agent: Agent | undefined;
  let component: GreengrassComponent | undefined;
  let pubsub: GreengrassPubsubInput | undefined;
  let log = createLogger('info', o.logDestination, { mode: 'greengrass' });
  try {
    let raw: unknown;
    try {
      raw = (await client.getConfiguration({ keyPath: [] })).value;
    } catch (err) {
      throw new AgentError('GREENGRASS_IPC_FAILED', `GetConfiguration failed: ${ipcErrorText(err)}`, { cause: err });
    }
    const settings = settingsFromComponent(raw, o.gg, { fileConfig: o.fileConfig, env: o.env, workDir: o.workDir });
    const config = settings.agent;
    log = createLogger(config.log.level, o.logDestination, { device: config.device_id, mode: 'greengrass' });
    const uplink = new GreengrassIpcUplink({ endpoint: o.gg, logger: log, backoff: { initialMs: config.uplink.backoff_initial_ms, maxMs: config.uplink.backoff_max_ms } });
    const ipcPublish = async (topic: string, payload: Buffer): Promise<void> => {
      await client.publishToTopic({ topic, publishMessage: { binaryMessage: { message: payload } } });
    };
    agent = await Agent.start(config, { log, uplink, ipcPublish, ...(o.clock ? { clock: o.clock } : {}) });
    const a = agent;
    component = new GreengrassComponent({
      client,
      env: o.gg,
      host: { deviceId: config.device_id, applyDesiredState: (d) => a.applyDesiredState(d), applyRuleSet: (m) => a.fleetRules?.submit(m) ?? Promise.resolve(), busy: () => a.busy(), checkpointQueue: () => a.checkpointQueue() },
      log,
      clock: o.clock ?? systemClock,
      workDir: o.workDir,
      startedAgentKey: settings.agentKey,
      ...(o.recheckAfterMs !== undefined ? { recheckAfterMs: o.recheckAfterMs } : {}),
    });
    await component.start(settings.desired, settings.desiredByModel, settings.ruleSet);
    if (config.ipc_pubsub.enabled) {
      pubsub = new GreengrassPubsubInput(client, { requestTopic: config.ipc_pubsub.request_topic, resultTopic: config.ipc_pubsub.result_topic }, (input, ctx) => a.infer(input, ctx), log);
      await pubsub.start().catch((err: unknown) => {
        throw new AgentError('GREENGRASS_IPC_FAILED', `SubscribeToTopic ${config.ipc_pubsub.request_topic} failed: ${ipcErrorText(err)}`, { cause: err });
      });
    }
  } catch (err) {
    log.error({ reason: errorLine(err) }, 'agent cannot run as a Greengrass component');
    await client.updateState({ state: ReportedLifecycleState.ERRORED }).catch(() => undefined);
    await pubsub?.stop();
    await component?.close();
    await agent?.stop().catch(() => undefined);
    await client.close().catch(() => undefined);
    throw err;
  }
  const c = component;
  const a = agent;
  const p = pubsub;
  let stopping: Promise<void> | undefined;
  return {
    agent: a,
    component: c,
    log,
    stop: () =>
      (stopping ??= (async () => {
        await p?.stop();
        await c.close();
        await a.stop();
        await client.close().catch(() => undefined);
      })()),
  };
}
