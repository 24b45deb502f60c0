import { request } from 'node:http';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { Agent } from '../../agent/agent.js';
import { parseAgentConfig, type AgentConfigInput } from '../../agent/config.js';
import { fleetKeys } from './packages.js';

/** A pino logger whose JSON lines tests can read. */
export function captureLogger(level = 'info'): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, stream), lines };
}

/** Start a real agent (HTTP on port 0, no uplink unless configured) in this process. */
export async function startTestAgent(dataDir: string, config: AgentConfigInput = {}): Promise<{ agent: Agent; url: string; lines: Array<Record<string, unknown>> }> {
  const { log, lines } = captureLogger();
  const cfg = parseAgentConfig({
    device_id: 'test-device',
    data_dir: dataDir,
    fleet_public_key: fleetKeys().publicKeyPem,
    ...config,
    http: { port: 0, ...(config.http ?? {}) },
    inference: { intra_op_threads: 1, warmup_runs: 1, ...(config.inference ?? {}) },
  });
  const agent = await Agent.start(cfg, { log });
  return { agent, url: agent.httpUrl ?? '', lines };
}

/**
 * POST `parts` to `url` under a declared `content-length` of `declared` bytes and never send
 * the rest: resolves with the answer the server gave without the whole body (a hostile client's
 * upload refused while it is read).
 */
export async function postUnfinished(url: string, contentType: string, declared: number, parts: ReadonlyArray<string | Buffer>): Promise<{ status: number; body: string }> {
  let sent: ReturnType<typeof request> | undefined;
  const answer = new Promise<{ status: number; body: string }>((resolve) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': contentType, 'content-length': String(declared) } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => undefined); // the server may close before we stop writing
    for (const p of parts) req.write(p);
    sent = req;
  });
  try {
    return await answer;
  } finally {
    sent?.destroy();
  }
}
