import { createHash } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { FleetErrors } from '../../errors.js';
import { canPublish, canSubscribe, clientIdAllowed, type Identity } from './acl.js';
import { MqttPacketGuard, PacketTooLargeError } from './packet-guard.js';

/** Checks credentials; resolves the identity, or null to refuse the connection. `remote`: the peer's address. */
export type Authenticator = (username: string | undefined, password: Buffer | undefined, clientId: string, remote: string) => Promise<Identity | null> | Identity | null;

/**
 * What the TLS listener knows of a client that presented a certificate the CA signed (TLS has
 * already checked chain and validity): its CN and the sha256 of its DER, lowercase hex.
 */
export interface PeerCertificate {
  commonName: string;
  sha256: string;
}

/**
 * Checks a certificate login: the identity, or a refusal with its reason (logged with
 * `FLEET_DEVICE_CERT_REFUSED`). Runs instead of {@link Authenticator} for TLS clients: no
 * password is looked at, so no password hash is spent.
 */
export type CertAuthenticator = (peer: PeerCertificate, clientId: string, remote: string) => { ok: true; identity: Identity } | { ok: false; reason: string };

/** The broker's MQTT-over-TLS listener, where devices log in with their certificate. */
export interface BrokerTlsOptions {
  /** 0 picks a free port. */
  port: number;
  /** CA certificate(s), PEM: a client certificate must chain to one of them. */
  ca: string;
  /** The broker's own certificate and key, PEM. */
  cert: string;
  key: string;
  authenticate: CertAuthenticator;
  /** Called before the handshake: a source still waiting out its backoff (> 0 ms) is dropped at once. */
  sourceWaitMs?: (remote: string) => number;
  /** A handshake failed (another CA, expired, no certificate): counts against the source. */
  handshakeFailed?: (remote: string) => void;
}

/** Largest MQTT packet the embedded broker takes by default: AWS IoT Core's 128 KB message plus room for its header. */
export const DEFAULT_MAX_PACKET_BYTES = 128 * 1024 + 1024;

export interface EmbeddedBroker {
  url: string;
  port: number;
  /** `mqtts://host:port` of the TLS listener, when it runs. */
  tlsUrl?: string;
  tlsPort?: number;
  broker: Aedes;
  /** End the connection of this client id, if one is connected (a revoked device). */
  disconnect(clientId: string): boolean;
  close(): Promise<void>;
}

/**
 * The fleet's in-process MQTT broker (aedes) on a TCP port; 0 picks a free port. With
 * `authenticate`, unknown clients are refused and each device is confined to its own topic
 * namespace (see acl.ts); without it the broker is open (local demo and tests only).
 */
export async function startEmbeddedBroker(opts: { port?: number; host?: string; authenticate?: Authenticator; log?: Logger; maxPacketBytes?: number; tls?: BrokerTlsOptions } = {}): Promise<EmbeddedBroker> {
  const log = opts.log;
  const maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const identities = new WeakMap<object, Identity>();
  const remotes = new WeakMap<object, string>();
  /** Connections of the TLS listener, with the client certificate TLS verified. */
  const peers = new WeakMap<object, PeerCertificate>();
  const auth = opts.authenticate;
  const certAuth = opts.tls?.authenticate;
  const authenticateCert = (client: { id: string; conn: object }, username: string | undefined, peer: PeerCertificate, done: (err: (Error & { returnCode: 5 }) | null, ok: boolean) => void): void => {
    const remote = remotes.get(client.conn) ?? 'unknown';
    // The identity is the certificate's; a user name, when given, must say the same.
    const v = username !== undefined && username !== '' && username !== peer.commonName ? { ok: false as const, reason: 'username_mismatch' } : certAuth ? certAuth(peer, client.id, remote) : { ok: false as const, reason: 'no_authenticator' };
    if (v.ok && clientIdAllowed(v.identity, client.id)) {
      identities.set(client, v.identity);
      return done(null, true);
    }
    const reason = v.ok ? 'client_id_mismatch' : v.reason;
    log?.warn({ client: client.id.slice(0, 128), cn: peer.commonName.slice(0, 128), sha256: peer.sha256, remote, reason, code: FleetErrors.DEVICE_CERT_REFUSED.code }, 'MQTT connection refused: device certificate not accepted');
    done(Object.assign(new Error('not authorized'), { returnCode: 5 as const }), false);
  };
  const broker = await Aedes.createBroker(
    auth || certAuth
      ? {
          authenticate: (client, username, password, done) => {
            const peer = peers.get(client.conn);
            if (peer) return authenticateCert(client, username, peer, done);
            Promise.resolve(auth ? auth(username, password, client.id, remotes.get(client.conn) ?? 'unknown') : null)
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
          preConnect: (client, packet, done) => {
            // The last will is published by the broker later without a client: check it now.
            const will = packet.will;
            const peer = peers.get(client.conn);
            const claimed = peer ? peer.commonName : packet.username;
            if (will && (peer || packet.username) && !canPublish({ kind: 'device', id: claimed ?? '' }, will.topic) && (peer !== undefined || !packet.clientId.startsWith('edgeloop-fleet'))) {
              log?.warn({ client: packet.clientId, topic: will.topic }, 'MQTT connection refused: last will outside the namespace');
              return done(null, false);
            }
            done(null, true);
          },
        }
      : {},
  );
  const sockets = new Set<net.Socket>();
  const serve = (socket: net.Socket, peer?: PeerCertificate): void => {
    // The broker reads through the guard, so an oversized packet ends the connection at its
    // header instead of being buffered whole.
    const guard = new MqttPacketGuard(maxPacketBytes);
    guard.on('error', (err) => {
      if (err instanceof PacketTooLargeError) log?.warn({ remote: socket.remoteAddress, bytes: err.bytes, limit: err.limit, code: FleetErrors.MQTT_PACKET_TOO_LARGE.code }, 'MQTT connection closed: packet over the size limit');
      // An abort is the connection being torn down (the broker refused a connect or a publish
      // and said why in its own line), not a bad header.
      else if (err.name !== 'AbortError') log?.warn({ remote: socket.remoteAddress, reason: err.message }, 'MQTT connection closed: malformed packet header');
      socket.destroy();
    });
    const conn = Duplex.from({ readable: socket.pipe(guard), writable: socket });
    conn.on('error', () => socket.destroy());
    conn.on('close', () => socket.destroy());
    remotes.set(conn, socket.remoteAddress ?? 'unknown');
    if (peer) peers.set(conn, peer);
    broker.handle(conn);
  };
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  const server = net.createServer((socket) => {
    track(socket);
    serve(socket);
  });
  const host = opts.host ?? '127.0.0.1';
  const listen = (srv: net.Server, port: number): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => resolve((srv.address() as net.AddressInfo).port));
    });
  const port = await listen(server, opts.port ?? 0);
  const servers: net.Server[] = [server];
  let tlsPort: number | undefined;
  if (opts.tls) {
    const t = opts.tls;
    // The chain is checked by TLS, but the verdict is read here rather than letting the handshake
    // fail (rejectUnauthorized: false): a refused device is then logged with the verifier's
    // reason (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE...) and its address, and closed
    // before a single MQTT byte is read.
    const tlsServer = tls.createServer({ ca: t.ca, cert: t.cert, key: t.key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 }, (socket) => {
      const remote = socket.remoteAddress ?? 'unknown';
      const cert = socket.getPeerCertificate();
      if (!socket.authorized || !cert.raw) {
        t.handshakeFailed?.(remote);
        const reason = socket.authorizationError instanceof Error ? socket.authorizationError.message : String(socket.authorizationError ?? 'no client certificate');
        log?.warn({ remote, reason, code: FleetErrors.DEVICE_CERT_REFUSED.code }, 'MQTT TLS connection refused: no certificate, or one the fleet CA did not sign or that expired');
        socket.destroy();
        return;
      }
      const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : '';
      serve(socket, { commonName: cn, sha256: createHash('sha256').update(cert.raw).digest('hex') });
    });
    // Before the handshake: a source in backoff is dropped without spending one.
    tlsServer.on('connection', (socket: net.Socket) => {
      track(socket);
      const wait = t.sourceWaitMs?.(socket.remoteAddress ?? 'unknown') ?? 0;
      if (wait > 0) {
        log?.warn({ remote: socket.remoteAddress, retry_after_ms: wait, code: FleetErrors.DEVICE_CERT_REFUSED.code, reason: 'throttled' }, 'MQTT TLS connection dropped: too many refusals from this address');
        socket.destroy();
      }
    });
    tlsServer.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      // A handshake that did not complete (not TLS, no common cipher, a client that gave up).
      const remote = socket.remoteAddress ?? 'unknown';
      t.handshakeFailed?.(remote);
      log?.warn({ remote, reason: err.code ?? err.message, code: FleetErrors.DEVICE_CERT_REFUSED.code }, 'MQTT TLS handshake failed');
    });
    tlsPort = await listen(tlsServer, t.port);
    servers.push(tlsServer);
  }
  return {
    url: `mqtt://${host}:${port}`,
    port,
    ...(tlsPort !== undefined ? { tlsUrl: `mqtts://${host}:${tlsPort}`, tlsPort } : {}),
    broker,
    disconnect: (clientId) => {
      // aedes keeps connected clients by id in `clients` (not in its typings).
      const c = (broker as unknown as { clients: Record<string, { close(): void } | undefined> }).clients[clientId];
      c?.close();
      return c !== undefined;
    },
    close: async () => {
      const closed = Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
      for (const s of sockets) s.destroy();
      await closed;
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}
