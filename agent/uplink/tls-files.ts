import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AgentError } from '../errors.js';
import type { MqttTlsOptions } from './mqtt-uplink.js';

/** `uplink.tls` of the agent config: absolute paths after config parsing. */
export interface UplinkTlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  servername?: string | undefined;
}

/**
 * Read and check the uplink's TLS files once, at start: each must be readable PEM of its kind
 * (certificates for `ca` and `cert`, a private key for `key`) and the key must belong to the
 * certificate. Otherwise `AGENT_UPLINK_TLS_INVALID` naming the key and the file, so a wrong
 * path is an error at start instead of an endless reconnect loop with a TLS alert.
 */
export function readUplinkTls(t: UplinkTlsFiles): MqttTlsOptions {
  const read = (k: 'ca' | 'cert' | 'key', path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw invalid(k, path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
    }
  };
  const certOf = (k: 'ca' | 'cert', path: string, pem: Buffer): X509Certificate => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw invalid(k, path, 'is not a PEM certificate', err);
    }
  };
  const out: MqttTlsOptions = {};
  if (t.ca) {
    const pem = read('ca', t.ca);
    certOf('ca', t.ca, pem);
    out.ca = pem;
  }
  if (t.cert && t.key) {
    const certPem = read('cert', t.cert);
    const keyPem = read('key', t.key);
    const cert = certOf('cert', t.cert, certPem);
    let key: KeyObject;
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw invalid('key', t.key, 'is not a PEM private key', err);
    }
    if (!cert.checkPrivateKey(key)) throw invalid('key', t.key, `does not belong to the certificate ${t.cert}`);
    out.cert = certPem;
    out.key = keyPem;
  }
  if (t.servername) out.servername = t.servername;
  return out;
}

function invalid(k: string, path: string, why: string, cause?: unknown): AgentError {
  return new AgentError('UPLINK_TLS_INVALID', `uplink.tls.${k}: ${path} ${why}`, { ...(cause ? { cause } : {}), details: { key: `uplink.tls.${k}`, file: path } });
}
