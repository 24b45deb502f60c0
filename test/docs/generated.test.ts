import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentErrors } from '../../agent/errors.js';
import { CONFIG_SECTIONS, configRows } from '../../docs/config-doc.js';
import { GENERATED, ROOT } from '../../docs/generate.js';
import { renderErrors } from '../../docs/errors-doc.js';
import { ClientErrors } from '../../fleet/edges/client/errors.js';
import { FleetErrors } from '../../fleet/errors.js';
import { SharedErrors, type CatalogueEntry } from '../../shared/errors.js';

function committed(path: string): string {
  try {
    return readFileSync(join(ROOT, path), 'utf8');
  } catch {
    return `(${path} is missing)`;
  }
}

describe('generated docs', () => {
  for (const g of GENERATED) {
    it(`${g.path} is what the generator writes`, () => {
      expect(committed(g.path), `${g.path} is out of date: run \`npm run docs\` and commit the result`).toBe(g.render(ROOT));
    });
  }

  it('docs/errors.md lists every code once per catalogue, with its status, exit code and TSDoc', () => {
    const md = renderErrors(ROOT);
    const rows = md.split('\n').filter((l) => l.startsWith('| `'));
    const shared = new Set<CatalogueEntry>(Object.values(SharedErrors));
    const own = [SharedErrors, AgentErrors, FleetErrors, ClientErrors].flatMap((c) => Object.values<CatalogueEntry>(c).filter((e) => c === SharedErrors || !shared.has(e)));
    expect(rows).toHaveLength(own.length);
    for (const e of own) expect(rows, e.code).toContainEqual(expect.stringMatching(new RegExp(`^\\| \`${e.code}\` \\| ${e.status} \\| ${e.exit} \\| .+ \\|$`)));
    // The TSDoc is the meaning where there is one; the one-line text otherwise.
    expect(md).toContain('| `FLEET_TRAINING_ABORTED` | 499 | 1 | A training run was cancelled (AbortSignal: Ctrl-C, service shutdown). |');
    expect(md).toContain('| `AGENT_ENGINE_CLOSED` | 503 | 1 | The inference engine is shut down. |');
    expect(md).toContain('| `FLEET_USAGE` | 400 | 2 |');
  });

  it('docs/configuration.md describes every key of every configuration schema', () => {
    for (const section of CONFIG_SECTIONS) {
      const rows = configRows(section.schema, section.collapse);
      expect(rows.length, section.title).toBeGreaterThan(1);
      for (const r of rows) expect(r.description, `${section.source}: ${r.key} has no description`).not.toBe('');
    }
  });

  it('reads type, default and allowed range from the schema, and computed defaults from their words', () => {
    const byKey = (source: string): Map<string, unknown> => {
      const s = CONFIG_SECTIONS.find((x) => x.source === source)!;
      return new Map(configRows(s.schema, s.collapse).map((r) => [r.key, r]));
    };
    const agent = byKey('agent/config.ts');
    expect(agent.get('uplink.max_inflight')).toMatchObject({ type: 'integer', default: '`50`', allowed: '1..100' });
    expect(agent.get('queue.synchronous')).toMatchObject({ type: 'string', default: '`"FULL"`', allowed: '`FULL`, `NORMAL`' });
    // Computed at start (the host name): the words, never this machine's name.
    expect(agent.get('device_id')).toMatchObject({ default: expect.stringContaining('the host name') });
    // The agent's outlier keys override the manifest's: no default of their own.
    expect(agent.get('outlier.min_confidence')).toMatchObject({ default: "the manifest's", allowed: '0..1' });
    const training = byKey('fleet/boot/training-config.ts');
    expect(training.get('models')).toMatchObject({ default: 'required', allowed: '>= 1 items' });
    expect(training.get('models[].holdout.fraction')).toMatchObject({ default: 'required', description: expect.stringMatching(/^\(`kind` `"hash"`\) /) });
    expect(training.get('models[].auto_promote.plan')).toBeDefined();
    expect(training.get('models[].auto_promote.plan.canary')).toBeUndefined();
    const aws = byKey('fleet/adapters/aws/aws-config.ts');
    expect(aws.get('greengrass.abort.threshold_percentage')).toMatchObject({ type: 'number', default: '`10`', allowed: '> 0, <= 100' });
    expect(aws.get('region')).toMatchObject({ default: 'required' });
  });
});
