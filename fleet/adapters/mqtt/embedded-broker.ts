import net from 'node:net';
import { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { FleetErrors } from '../../errors.js';
import { canPublish, canSubscribe, clientIdAllowed, type Identity } from './acl.js';
import { MqttPacketGuard, PacketTooLargeError } from './packet-guard.js';

/** Checks credentials; resolves the identity, or null to refuse the connection. `remote`: the peer's address. */
export type Authenticator = (username: string | undefined, password: Buffer | undefined, clientId: string, remote: string) => Promise<Identity | null> | Identity | null;

/** Largest MQTT packet the embedded broker takes by default: AWS IoT Core's 128 KB message plus room for its header. */
export const DEFAULT_MAX_PACKET_BYTES = 128 * 1024 + 1024;

export interface EmbeddedBroker {
  url: string;
  port: number;
  broker: Aedes;
  close(): Promise<void>;
}

/**
 * The fleet's in-process MQTT broker (aedes) on a TCP port; 0 picks a free port. With
 * `authenticate`, unknown clients are refused and each device is confined to its own topic
 * namespace (see acl.ts); without it the broker is open (local demo and tests only).
 */
export async function startEmbeddedBroker(opts: { port?: number; host?: string; authenticate?: Authenticator; log?: Logger; maxPacketBytes?: number } = {}): Promise<EmbeddedBroker> {
  const log = opts.log;
  const maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const identities = new WeakMap<object, Identity>();
  const remotes = new WeakMap<object, string>();
  const auth = opts.authenticate;
  const broker = await Aedes.createBroker(
    auth
      ? {
          authenticate: (client, username, password, done) => {
            Promise.resolve(auth(username, password, client.id, remotes.get(client.conn) ?? 'unknown'))
              .then((who) => {
                if (!who || !clientIdAllowed(who, client.id)) {
                  log?.warn({ client: client.id, username }, 'MQTT connection refused: unknown client or wrong credentials');
                  const err = Object.assign(new Error('not authorized'), { returnCode: 5 as const });
                  return done(err, false);
                }
                identities.set(client, who);
                done(null, true);
              })
              .catch((err: unknown) => done(Object.assign(err instanceof Error ? err : new Error(String(err)), { returnCode: 3 as const }), false));
          },
          authorizePublish: (client, packet, done) => {
            // client is null for the broker's own messages (wills are checked at CONNECT below).
            const who = client ? identities.get(client) : { kind: 'fleet' as const };
            if (who && canPublish(who, packet.topic)) return done(null);
            log?.warn({ client: client?.id, topic: packet.topic }, 'MQTT publish refused: outside the client namespace');
            done(new Error(`publish to ${packet.topic} not allowed`));
          },
          authorizeSubscribe: (client, sub, done) => {
            const who = identities.get(client);
            if (who && canSubscribe(who, sub.topic)) return done(null, sub);
            log?.warn({ client: client.id, topic: sub.topic }, 'MQTT subscription refused: outside the client namespace');
            // A null subscription makes the broker answer SUBACK 0x80 (failure) for this filter.
            done(null, null);
          },
          preConnect: (_client, packet, done) => {
            // The last will is published by the broker later without a client: check it now.
            const will = packet.will;
            if (will && packet.username && !canPublish({ kind: 'device', id: packet.username }, will.topic) && !packet.clientId.startsWith('edgeloop-fleet')) {
              log?.warn({ client: packet.clientId, topic: will.topic }, 'MQTT connection refused: last will outside the namespace');
              return done(null, false);
            }
            done(null, true);
          },
        }
      : {},
  );
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // The broker reads through the guard, so an oversized packet ends the connection at its
    // header instead of being buffered whole.
    const guard = new MqttPacketGuard(maxPacketBytes);
    guard.on('error', (err) => {
      if (err instanceof PacketTooLargeError) log?.warn({ remote: socket.remoteAddress, bytes: err.bytes, limit: err.limit, code: FleetErrors.MQTT_PACKET_TOO_LARGE.code }, 'MQTT connection closed: packet over the size limit');
      else log?.warn({ remote: socket.remoteAddress, reason: err.message }, 'MQTT connection closed: malformed packet header');
      socket.destroy();
    });
    const conn = Duplex.from({ readable: socket.pipe(guard), writable: socket });
    conn.on('error', () => socket.destroy());
    conn.on('close', () => socket.destroy());
    remotes.set(conn, socket.remoteAddress ?? 'unknown');
    broker.handle(conn);
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
