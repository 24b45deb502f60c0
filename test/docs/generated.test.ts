import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentErrors } from '../../agent/errors.js';
import { GENERATED, ROOT } from '../../docs/generate.js';
import { renderErrors } from '../../docs/errors-doc.js';
import { ClientErrors } from '../../fleet/client/errors.js';
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
});
