/**
 * `npm run docs`: writes the generated reference docs. test/docs/generated.test.ts fails when a
 * committed file differs from what this produces.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderConfiguration } from './config-doc.js';
import { renderErrors } from './errors-doc.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Every generated doc: its path from the repository root and how to render it. */
export const GENERATED: ReadonlyArray<{ path: string; render: (root: string) => string }> = [
  { path: 'docs/errors.md', render: renderErrors },
  { path: 'docs/configuration.md', render: () => renderConfiguration() },
];

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const g of GENERATED) {
    writeFileSync(join(ROOT, g.path), g.render(ROOT));
    process.stdout.write(`wrote ${g.path}\n`);
  }
}
