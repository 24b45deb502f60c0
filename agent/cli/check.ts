import { parseFlags, type Io } from '../../shared/cli.js';
import { AgentError } from '../errors.js';
import { checkRuntime, failureReason } from '../runtime-check.js';

const CHECK_HELP = `Usage: edgeloop-agent check [--json]

Checks that this Node.js runs the agent's native modules: better-sqlite3 (built for one
NODE_MODULE_VERSION), ONNX Runtime, sharp and aws-crt (N-API; built for one CPU and a minimum
glibc). A packaged agent (the Greengrass zip) also compares this Node with the one it carries.
Prints the runtime, what the package was built for and one line per module; exits 1 with
AGENT_RUNTIME_MISMATCH naming the mismatch when anything does not load. The Greengrass
component's install step runs it.`;

/** `edgeloop-agent check`: thin over {@link checkRuntime}. */
export async function runtimeCheckCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, CHECK_HELP);
  if (values.help) {
    io.out(CHECK_HELP);
    return 0;
  }
  const r = await checkRuntime();
  if (values.json) {
    io.out(JSON.stringify({ ok: r.ok, running: r.running, built_for: r.builtFor, mismatch: r.mismatch, modules: r.modules }));
  } else {
    const run = r.running;
    io.out(`runtime   Node ${run.node} ${run.platform}-${run.arch}, NODE_MODULE_VERSION ${run.modules}, ${run.glibc ? `glibc ${run.glibc}` : 'no glibc'}`);
    const b = r.builtFor;
    io.out(
      b
        ? `package   built for Node ${b.node} linux-${b.arch} (NODE_MODULE_VERSION ${b.modules}); its binaries need ${Object.entries(b.needs)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`
        : 'package   a checkout: native modules from node_modules',
    );
    for (const m of r.modules) io.out(`${m.ok ? 'ok  ' : 'FAIL'}      ${m.module.padEnd(17)} ${m.detail}`);
  }
  if (r.ok) return 0;
  throw new AgentError('RUNTIME_MISMATCH', failureReason(r));
}
