import { readFileSync } from 'node:fs';
import type { Io } from '../../shared/cli.js';
import { AgentError } from '../errors.js';
import type { GreengrassEnv } from '../greengrass/env.js';
import { startGreengrassAgent } from '../greengrass/run.js';

/** `edgeloop-agent run` under the Greengrass nucleus: thin over {@link startGreengrassAgent}. */
export async function runGreengrassCmd(gg: Readonly<GreengrassEnv>, o: { configFile?: string | undefined; env: Record<string, string | undefined>; io: Io }): Promise<number> {
  let fileConfig: Record<string, unknown> | undefined;
  if (o.configFile) {
    try {
      fileConfig = JSON.parse(readFileSync(o.configFile, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new AgentError('CONFIG_INVALID', `cannot read config file ${o.configFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  // Signal handlers first: the nucleus may stop the component while it is still starting
  // (a deployment right after boot); the stop then runs as soon as the start finished.
  // Repeated signals while stopping are ignored (the nucleus escalates to SIGKILL itself).
  let requested: string | null = null;
  let wake: () => void = () => undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (requested) return;
    requested = signal;
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const run = await startGreengrassAgent({ gg, env: o.env, ...(fileConfig ? { fileConfig } : {}), workDir: process.cwd() });
  const c = run.agent.config;
  o.io.out(JSON.stringify({ event: 'ready', mode: 'greengrass', device_id: c.device_id, http: run.agent.httpUrl, model: run.agent.service.activeRef, data_dir: c.data_dir }));
  await new Promise<void>((resolve) => {
    wake = resolve;
    if (requested) resolve();
  });
  run.log.info({ signal: requested }, 'stopping');
  await run.stop().catch((err: unknown) => run.log.error({ err }, 'stop failed'));
  return 0;
}
