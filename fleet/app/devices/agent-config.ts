import { deviceToken } from './credentials.js';

/**
 * The part of an agent config (agent/config.ts, `agentConfigSchema`) the fleet knows for a
 * device: paste it into the device's config file, or merge it with local settings. Keys and
 * shapes follow that schema exactly; it is a strict schema, so nothing else is added.
 */
export interface AgentConfigSnippet {
  device_id: string;
  tags: Record<string, string>;
  /** The fleet's ed25519 public key, PEM (the agent accepts a PEM string or a path). */
  fleet_public_key: string;
  /** Bearer token for the fleet's HTTP API (model downloads): `<device id>.<secret>`. */
  fleet_token: string;
  uplink: { kind: 'mqtt'; url: string; username: string; password: string } | { kind: 'mqtt'; url: string; tls: { ca: string; cert: string; key: string } };
}

/**
 * File names of a certificate login, relative to the agent config: what `edgeloop devices
 * register --cert --dir DIR` writes into DIR next to the config.
 */
export const CERT_FILES = Object.freeze({ ca: 'ca.cert.pem', cert: 'device.cert.pem', key: 'device.key.pem' });

export interface AgentConfigOptions {
  mqttUrl: string;
  publicKeyPem: string;
  /**
   * Accepted for the caller's convenience and not written: the agent config has no key for
   * the fleet's HTTP URL (each desired state carries the package `base_url`).
   */
  httpUrl?: string;
  /**
   * The broker's TLS listener (`mqtts://`): the uplink logs in with the device certificate
   * ({@link CERT_FILES}) instead of the secret, which stays only as the HTTP token.
   */
  mqttsUrl?: string;
}

/** Build the snippet. Pure: the caller passes the secret it got from register/rotate (it is not stored). */
export function agentConfigSnippet(deviceId: string, tags: Record<string, string>, secret: string, o: AgentConfigOptions): AgentConfigSnippet {
  return {
    device_id: deviceId,
    tags: { ...tags },
    fleet_public_key: o.publicKeyPem,
    fleet_token: deviceToken(deviceId, secret),
    uplink: o.mqttsUrl ? { kind: 'mqtt', url: o.mqttsUrl, tls: { ...CERT_FILES } } : { kind: 'mqtt', url: o.mqttUrl, username: deviceId, password: secret },
  };
}
