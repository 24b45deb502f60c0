/**
 * docs/errors.md from the error catalogues: one table per catalogue with the wire code, the
 * HTTP status, the CLI exit code and the meaning (the entry's TSDoc, else its one-line text).
 */
import { join } from 'node:path';
import { AgentErrors } from '../agent/errors.js';
import { ClientErrors } from '../fleet/edges/client/errors.js';
import { FleetErrors } from '../fleet/errors.js';
import { ExitCode, SharedErrors, type CatalogueEntry } from '../shared/errors.js';
import { code, GENERATED_NOTE, table } from './markdown.js';
import { propertyDocs } from './tsdoc.js';

interface Section {
  title: string;
  /** Source file and exported name, for the TSDoc of each entry. */
  file: string;
  name: string;
  catalogue: Readonly<Record<string, CatalogueEntry>>;
  intro: string;
}

const SECTIONS: readonly Section[] = [
  {
    title: 'Shared codes',
    file: 'shared/errors.ts',
    name: 'SharedErrors',
    catalogue: SharedErrors,
    intro: 'Model, input and sample codes that the agent and the fleet both meet, command-line usage, and the internal error. No prefix: a code means the same on a device and in the fleet.',
  },
  {
    title: 'Agent codes',
    file: 'agent/errors.ts',
    name: 'AgentErrors',
    catalogue: AgentErrors,
    intro: "The agent's own codes (`AgentError`); the status is what the agent's local HTTP API answers.",
  },
  {
    title: 'Fleet codes',
    file: 'fleet/errors.ts',
    name: 'FleetErrors',
    catalogue: FleetErrors,
    intro: "The fleet service's and the `edgeloop` CLI's own codes (`FleetError`); the status is what the fleet's HTTP API answers.",
  },
  {
    title: 'Fleet client codes',
    file: 'fleet/edges/client/errors.ts',
    name: 'ClientErrors',
    catalogue: ClientErrors,
    intro: "Raised by the fleet's HTTP client (`fleet/edges/client`, which the `edgeloop` CLI uses) on the caller's side, so never an HTTP answer; everything the server refuses keeps the server's own code.",
  },
];

const shared = new Set<CatalogueEntry>(Object.values(SharedErrors));

function section(s: Section, root: string): string {
  const docs = propertyDocs(join(root, s.file), s.name);
  const own = Object.entries(s.catalogue).filter(([, e]) => s.catalogue === SharedErrors || !shared.has(e));
  const referenced = Object.values(s.catalogue).filter((e) => s.catalogue !== SharedErrors && shared.has(e));
  const rows = own.map(([key, e]) => [code(e.code), String(e.status), String(e.exit), docs.get(key) ?? `${e.text[0]!.toUpperCase()}${e.text.slice(1)}.`]);
  return [
    `## ${s.title}`,
    '',
    `${s.intro} Source: \`${s.file}\` (\`${s.name}\`).`,
    '',
    table(['code', 'HTTP', 'exit', 'meaning'], rows),
    ...(referenced.length ? ['', `Shared codes this catalogue references (its constructor takes them too): ${referenced.map((e) => code(e.code)).join(', ')}.`] : []),
  ].join('\n');
}

/** The text of docs/errors.md; `root` is the repository root (TSDoc is read from the sources). */
export function renderErrors(root: string): string {
  return [
    '# Error codes',
    '',
    GENERATED_NOTE('the error catalogues (`shared/errors.ts`, `agent/errors.ts`, `fleet/errors.ts`, `fleet/edges/client/errors.ts`)'),
    '',
    'Every error that crosses a boundary carries a stable code: scripts, devices and the fleet match on it. Model and input codes are shared by agent and fleet; side-specific codes carry a prefix (`AGENT_`, `FLEET_`).',
    'The HTTP APIs answer `{ "error": { "code", "message" } }` with the status shown (`details` too, where there are some).',
    `The CLIs (\`edgeloop\`, \`edgeloop-agent\`) print \`CODE: message\` on stderr and end with the exit code shown: ${ExitCode.USAGE} for bad usage, ${ExitCode.FAILURE} for any other error, ${ExitCode.OK} on success.`,
    'Every entry has an HTTP status, also the ones never answered over HTTP (the meaning says so): it is what the error object carries.',
    '',
    ...SECTIONS.flatMap((s) => [section(s, root), '']),
  ].join('\n');
}
