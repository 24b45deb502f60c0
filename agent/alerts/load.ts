import { readFileSync } from 'node:fs';
import { parseConfig, type ConfigKind } from '../../shared/config.js';
import { alertRuleSet, ruleSetProblems, type AlertRuleSet } from '../../shared/schemas/index.js';
import type { AgentConfig } from '../config.js';
import { AgentError } from '../errors.js';

const RULE_SET: ConfigKind = { what: 'alert rule set', error: (m, o) => new AgentError('ALERT_RULES_INVALID', m, o) };

/** A rule set from JSON data: every bad key named in one `AGENT_ALERT_RULES_INVALID`, else the frozen rule set. */
export function parseRuleSet(data: unknown, path?: string): Readonly<AlertRuleSet> {
  return parseConfig(alertRuleSet, data, RULE_SET, { ...(path ? { path } : {}), check: (raw) => ruleSetProblems(raw) });
}

/**
 * The rule set of an agent config: its `alerts.rules_file`, or its inline `alerts.rules` and
 * `alerts.actions` (issues then named `alerts.rules.0.min_score`, as the config file has them).
 */
export function loadRuleSet(alerts: AgentConfig['alerts']): Readonly<AlertRuleSet> {
  if (alerts.rules_file) {
    let text: string;
    try {
      text = readFileSync(alerts.rules_file, 'utf8');
    } catch (err) {
      throw new AgentError('ALERT_RULES_INVALID', `cannot read the alert rule set ${alerts.rules_file}: ${(err as Error).message}`, { cause: err });
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new AgentError('ALERT_RULES_INVALID', `alert rule set ${alerts.rules_file} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    return parseRuleSet(data, alerts.rules_file);
  }
  try {
    return parseRuleSet({ rules: alerts.rules, actions: alerts.actions, ...(alerts.camera_states !== undefined ? { camera_states: alerts.camera_states } : {}) });
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    const issues = ((err.details?.['issues'] as string[] | undefined) ?? []).map((i) => `alerts.${i}`);
    throw new AgentError('ALERT_RULES_INVALID', `alert rule set in the agent configuration is invalid: ${issues.join('; ')}`, { details: { issues } });
  }
}
