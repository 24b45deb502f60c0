import { componentConfiguration, type ComponentConfiguration, type ComponentDesired, type ComponentRuleSet } from '../../shared/schemas/index.js';
import { formatIssues } from '../../shared/validate.js';
import { deepMerge, envOverrides, parseAgentConfig, type AgentConfig } from '../config.js';
import { AgentError } from '../errors.js';
import type { GreengrassEnv } from './env.js';

export interface ComponentSettings {
  agent: Readonly<AgentConfig>;
  desired: ComponentDesired | null;
  /** Every model slot's desired state (`desired_by_model`), `model_name` set from its key. */
  desiredByModel: ComponentDesired[];
  /** The alert rule set from the configuration (`rule_set`), or null. */
  ruleSet: ComponentRuleSet | null;
  /** The `agent` subtree as configured, to tell a later change of it from a desired-model change. */
  agentKey: string;
}

/**
 * The agent config in Greengrass mode: the config file (if any) < the component
 * configuration's `agent` key < `EDGELOOP_AGENT_*` environment overrides. Defaults that
 * differ from plain mode: the device id is the thing name, and `data_dir` is `data` under
 * the working directory, which the nucleus sets to the component's `{work:path}` (kept
 * across component updates, so the model store and queue survive them).
 * Throws `AGENT_GREENGRASS_CONFIG_INVALID` naming every bad key.
 */
export function settingsFromComponent(raw: unknown, gg: Pick<GreengrassEnv, 'thingName'>, opts: { fileConfig?: Record<string, unknown>; env?: Record<string, string | undefined>; workDir: string }): ComponentSettings {
  // Both halves are checked before failing, so one answer names every bad key.
  const parsed = componentConfiguration.safeParse(raw ?? {});
  const issues = parsed.success ? [] : formatIssues(parsed.error.issues);
  const rawAgent = (raw as { agent?: unknown } | null | undefined)?.agent;
  const agentInput = rawAgent && typeof rawAgent === 'object' && !Array.isArray(rawAgent) ? (rawAgent as Record<string, unknown>) : {};
  const defaults: Record<string, unknown> = { data_dir: 'data', ...(gg.thingName ? { device_id: gg.thingName } : {}) };
  const merged = deepMerge(deepMerge(deepMerge(defaults, opts.fileConfig ?? {}), agentInput), envOverrides(opts.env ?? {}));
  let agent: Readonly<AgentConfig> | undefined;
  try {
    agent = parseAgentConfig(merged, opts.workDir);
  } catch (err) {
    issues.push(...(((err as AgentError).details?.issues as string[] | undefined)?.map((i) => `agent.${i}`) ?? [(err as Error).message]));
  }
  if (!parsed.success || !agent || issues.length > 0) {
    throw new AgentError('GREENGRASS_CONFIG_INVALID', `component configuration is invalid: ${issues.join('; ')}`, { details: { issues } });
  }
  const c: ComponentConfiguration = parsed.data;
  const desiredByModel = Object.entries(c.desired_by_model ?? {}).flatMap(([name, d]) => (d ? [{ ...d, model_name: name }] : []));
  return { agent, desired: c.desired ?? null, desiredByModel, ruleSet: c.rule_set ?? null, agentKey: JSON.stringify(c.agent) };
}

/** Validation for `SubscribeToValidateConfigurationUpdates`: null when valid, else the reason (every bad key named). */
export function configurationProblem(raw: unknown, gg: Pick<GreengrassEnv, 'thingName'>, workDir: string): string | null {
  try {
    settingsFromComponent(raw, gg, { workDir });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
