/**
 * Real MQTT brokers on loopback for tests (docs/conventions.md rule 8): the in-process aedes broker, and
 * mosquitto as a child process where installed. Ports are picked by the OS (port 0).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { missingBinary } from './optional-binary.js';

/** A running broker. `stop()`/`restart()` take it down and bring it back on the same port. */
export interface BrokerHandle {
  name: string;
  url: string;
  port: number;
  /** Close listener and every client connection, as if the broker host went away. */
  stop(): Promise<void>;
  /** Listen again on the same port. */
  restart(): Promise<void>;
  /** Shut down for good. */
  close(): Promise<void>;
}

/** The aedes handle also exposes the broker, for counting publishes at the broker. */
export interface AedesHandle extends BrokerHandle {
  broker: Aedes;
}

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Start aedes in-process behind a TCP server on 127.0.0.1, port chosen by the OS. */
export async function startAedes(): Promise<AedesHandle> {
  const broker = await Aedes.createBroker({ heartbeatInterval: 60_000 });
  const sockets = new Set<net.Socket>();
  let server = net.createServer();
  const attach = (s: net.Server): void => {
    s.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      broker.handle(socket);
    });
  };
  attach(server);
  const port = await listen(server, 0);
  let listening = true;

  const stop = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  const restart = async (): Promise<void> => {
    if (listening) return;
    server = net.createServer();
    attach(server);
    await listen(server, port);
    listening = true;
  };
  const close = async (): Promise<void> => {
    await stop();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  };
  return { name: 'aedes', url: `mqtt://127.0.0.1:${port}`, port, broker, stop, restart, close };
}

export const MOSQUITTO_PATH = '/usr/sbin/mosquitto';

/** Null when mosquitto is installed; otherwise why the mosquitto variant is skipped. */
export function mosquittoSkipReason(): string | null {
  return missingBinary(MOSQUITTO_PATH, 'install the Debian package "mosquitto"');
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server, 0);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`broker did not listen on ${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Start mosquitto on a free loopback port with a temporary config (anonymous access,
 * no persistence). Returns null when the binary is missing. The port is found by
 * binding port 0 and releasing it, since mosquitto cannot report a port it picked itself.
 * With `tls` (PEM file paths) the listener is TLS with `require_certificate true`: a client
 * without a certificate from `cafile` is refused in the handshake, as AWS IoT Core does; the
 * certificate's CN becomes the MQTT username. `logs()` returns mosquitto's stderr so far.
 */
export async function startMosquitto(o: { tls?: { cafile: string; certfile: string; keyfile: string } } = {}): Promise<(BrokerHandle & { logs(): string }) | null> {
  if (mosquittoSkipReason() !== null) return null;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
  // Started as root, mosquitto drops to its own user: it reads copies in a directory it may enter.
  const copy = (from: string, name: string): string => {
    const to = join(dir, name);
    copyFileSync(from, to);
    chmodSync(to, 0o644);
    return to;
  };
  if (o.tls) chmodSync(dir, 0o755);
  const tlsLines = o.tls ? [`cafile ${copy(o.tls.cafile, 'ca.pem')}`, `certfile ${copy(o.tls.certfile, 'server.pem')}`, `keyfile ${copy(o.tls.keyfile, 'server.key')}`, 'require_certificate true', 'use_identity_as_username true', 'log_type notice'] : [];
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...tlsLines, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', ''].join('\n'));
  let child: ChildProcess | undefined;
  let stderr = '';
  const launch = async (): Promise<void> => {
    stderr = '';
    const proc = spawn(MOSQUITTO_PATH, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child = proc;
    const exitedEarly = waitForExit(proc).then(() => {
      throw new Error(`mosquitto exited at start: ${stderr.trim()}`);
    });
    await Promise.race([waitForPort(port, 5000), exitedEarly]);
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc) return;
    proc.kill('SIGKILL');
    await waitForExit(proc);
  };
  await launch();
  return {
    name: 'mosquitto',
    url: `${o.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    logs: () => stderr,
    stop,
    restart: async () => {
      if (!child) await launch();
    },
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One broker implementation to run a contract suite against. */
export interface BrokerFactory {
  name: string;
  /** Null when the broker can run here; otherwise why its suite is skipped. */
  skipReason: string | null;
  start(): Promise<BrokerHandle>;
}

/** Every broker available for contract suites: aedes always, mosquitto where installed. */
export function brokerMatrix(): BrokerFactory[] {
  return [
    { name: 'aedes', skipReason: null, start: startAedes },
    {
      name: 'mosquitto',
      skipReason: mosquittoSkipReason(),
      start: async () => {
        const handle = await startMosquitto();
        if (!handle) throw new Error(mosquittoSkipReason() ?? 'mosquitto unavailable');
        return handle;
      },
    },
  ];
}
