import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A site's uplink: a loopback TCP relay between a site's agents and the fleet's MQTT
 * broker. `cut()` models a real outage — every open connection is reset and new ones are
 * refused (accepted and destroyed at once, as a dead radio link would) until `restore()`.
 * The agents see exactly what they would in the field: the MQTT connection drops, the
 * reconnects fail, and their SQLite queues hold what they capture meanwhile.
 */
export interface SiteLink {
  site: string;
  /** `mqtt://127.0.0.1:<port>`: what the site's agents are configured with. */
  url: string;
  readonly up: boolean;
  /** Connections refused while the link was down. */
  readonly refused: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startSiteLink(site: string, target: { host: string; port: number }): Promise<SiteLink> {
  const open = new Set<Socket>();
  let up = true;
  let refused = 0;
  const server: Server = createServer((inbound) => {
    if (!up) {
      refused++;
      inbound.destroy();
      return;
    }
    const outbound = connect(target.port, target.host);
    const pair = [inbound, outbound];
    for (const s of pair) {
      open.add(s);
      s.on('close', () => open.delete(s));
      // A reset on one side ends the other: errors are part of an outage, never fatal here.
      s.on('error', () => pair.forEach((p) => p.destroy()));
    }
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    site,
    url: `mqtt://127.0.0.1:${port}`,
    get up() {
      return up;
    },
    get refused() {
      return refused;
    },
    cut() {
      up = false;
      for (const s of open) s.destroy();
    },
    restore() {
      up = true;
    },
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Host and port of an `mqtt://host:port` URL. */
export function brokerAddress(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 1883) };
}
