import net from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBroker {
  url: string;
  port: number;
  broker: Aedes;
  close(): Promise<void>;
}

/**
 * The fleet's in-process MQTT broker (aedes) on a TCP port; 0 picks a free port. Access
 * control (per-device credentials and topic namespaces) is added by the fleet service.
 */
export async function startEmbeddedBroker(opts: { port?: number; host?: string; configure?: (b: Aedes) => void } = {}): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  opts.configure?.(broker);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://${host}:${port}`,
    port,
    broker,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}
