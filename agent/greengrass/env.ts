import { AgentError } from '../errors.js';
import type { IpcEndpoint } from './ipc-client.js';

/** What the Greengrass nucleus tells a component through its environment. */
export interface GreengrassEnv extends IpcEndpoint {
  /** `AWS_IOT_THING_NAME`: the core device's thing name, the agent's default device id. */
  thingName?: string | undefined;
  /** `AWS_REGION`, for logs. */
  region?: string | undefined;
}

/**
 * Greengrass mode, detected once at config time from the environment the nucleus gives
 * every component it runs: `SVCUID` (the IPC auth token) and
 * `AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT` (the IPC socket). Neither set =
 * plain mode (null). Only one of them set is a broken environment and an error: running in
 * plain mode there would silently ignore the deployment's configuration.
 */
export function detectGreengrass(env: Record<string, string | undefined>): Readonly<GreengrassEnv> | null {
  const socketPath = env.AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT || undefined;
  const authToken = env.SVCUID || undefined;
  if (!socketPath && !authToken) return null;
  if (!socketPath || !authToken) {
    const missing = !socketPath ? 'AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT' : 'SVCUID';
    throw new AgentError('GREENGRASS_ENV_INCOMPLETE', `Greengrass environment incomplete: ${missing} is not set (the nucleus sets both for a component it runs)`, { details: { missing } });
  }
  return Object.freeze({ socketPath, authToken, thingName: env.AWS_IOT_THING_NAME || undefined, region: env.AWS_REGION || undefined });
}
