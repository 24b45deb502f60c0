import type { RuleSetAssignment, RuleSetInfo, RuleSetsRepo, StandingDeployment } from '../../app/rules/rule-sets.js';
import { canonicalJson } from '../../../shared/signing.js';
import type { SignedRuleSet } from '../../../shared/schemas/index.js';
import type { FleetDb } from './db.js';
import { guarded } from './guard.js';

interface AssignmentRow {
  device_id: string;
  name: string | null;
  version: number | null;
  revision: number;
  assigned_at: number;
  assigned_by: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The `rule_sets` and `rule_set_assignments` tables: every read and write of them. */
export function sqliteRuleSetsRepo(db: FleetDb): RuleSetsRepo {
  const s = db.sqlite;
  const maxVersion = s.prepare<[string], number>('SELECT coalesce(max(version), 0) FROM rule_sets WHERE name = ?').pluck();
  const insert = s.prepare<{ name: string; version: number; sha256: string; document: string; created_at: number; created_by: string }>(
    'INSERT INTO rule_sets (name, version, sha256, document, created_at, created_by) VALUES (@name, @version, @sha256, @document, @created_at, @created_by)',
  );
  const find = s.prepare<[string, number], string>('SELECT document FROM rule_sets WHERE name = ? AND version = ?').pluck();
  const latest = s.prepare<[string], string>('SELECT document FROM rule_sets WHERE name = ? ORDER BY version DESC LIMIT 1').pluck();
  const list = s.prepare<[], { name: string; version: number; sha256: string; document: string; created_at: number; created_by: string; devices: number }>(
    `SELECT r.name, r.version, r.sha256, r.document, r.created_at, r.created_by,
            (SELECT count(*) FROM rule_set_assignments a WHERE a.name = r.name AND a.version = r.version) AS devices
     FROM rule_sets r ORDER BY r.name, r.version`,
  );
  const revisionOf = s.prepare<[string], number>('SELECT revision FROM rule_set_assignments WHERE device_id = ?').pluck();
  const upsert = s.prepare<AssignmentRow>(
    `INSERT INTO rule_set_assignments (device_id, name, version, revision, assigned_at, assigned_by) VALUES (@device_id, @name, @version, @revision, @assigned_at, @assigned_by)
     ON CONFLICT (device_id) DO UPDATE SET name = excluded.name, version = excluded.version, revision = excluded.revision, assigned_at = excluded.assigned_at, assigned_by = excluded.assigned_by`,
  );
  const assignment = s.prepare<[string], AssignmentRow>('SELECT * FROM rule_set_assignments WHERE device_id = ?');
  const recordDeployment = s.prepare<{ selector: string; name: string | null; version: number | null; deployed_at: number; deployed_by: string }>(
    `INSERT INTO rule_set_deployments (selector, name, version, deployed_at, deployed_by, ord)
     VALUES (@selector, @name, @version, @deployed_at, @deployed_by, (SELECT coalesce(max(ord), 0) + 1 FROM rule_set_deployments))
     ON CONFLICT (selector) DO UPDATE SET name = excluded.name, version = excluded.version, deployed_at = excluded.deployed_at, deployed_by = excluded.deployed_by, ord = excluded.ord`,
  );
  const deployments = s.prepare<[], { selector: string; name: string | null; version: number | null; deployed_at: number }>('SELECT selector, name, version, deployed_at FROM rule_set_deployments ORDER BY ord DESC');

  const insertNext = s.transaction((name: string, make: (version: number) => SignedRuleSet, by: string, at: number): SignedRuleSet => {
    const doc = make(maxVersion.get(name)! + 1);
    insert.run({ name, version: doc.version, sha256: doc.sha256, document: JSON.stringify(doc), created_at: at, created_by: by });
    return doc;
  });
  const assign = s.transaction((ids: readonly string[], name: string | null, version: number | null, by: string, at: number) =>
    ids.map((device_id) => {
      const revision = Math.max((revisionOf.get(device_id) ?? 0) + 1, at);
      upsert.run({ device_id, name, version, revision, assigned_at: at, assigned_by: by });
      return { device_id, revision };
    }),
  );
  const parse = (text: string | undefined): SignedRuleSet | null => (text === undefined ? null : (JSON.parse(text) as SignedRuleSet));

  return guarded('rule sets', {
    insertNext: (name, make, by, at) => insertNext.immediate(name, make, by, at),
    find: (name, version) => parse(find.get(name, version)),
    latest: (name) => parse(latest.get(name)),
    list: () =>
      list.all().map((r): RuleSetInfo => {
        const doc = JSON.parse(r.document) as SignedRuleSet;
        const rules = doc.rules['rules'];
        return { name: r.name, version: r.version, sha256: r.sha256, rules: Array.isArray(rules) ? rules.length : 0, created_at: iso(r.created_at), created_by: r.created_by, devices: r.devices };
      }),
    assign: (ids, name, version, by, at) => assign.immediate(ids, name, version, by, at),
    recordDeployment: (selector, name, version, by, at) => void recordDeployment.run({ selector: canonicalJson(selector), name, version, deployed_at: at, deployed_by: by }),
    deployments: () => deployments.all().map((r): StandingDeployment => ({ ...r, selector: JSON.parse(r.selector) as Record<string, string> })),
    assignmentOf: (id) => {
      const r = assignment.get(id);
      return r ? ({ ...r, assigned_at: iso(r.assigned_at) } satisfies RuleSetAssignment) : null;
    },
  } satisfies RuleSetsRepo);
}
