import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { CertificateAuthority } from '../../app/devices/certificates.js';
import { FleetError } from '../../errors.js';
import { distinguishedName, issueCertificate, keyIdentifier, subjectOf } from './x509.js';

/** Validity of a CA the fleet makes itself: 20 years (devices in the field outlive a short one). */
const CA_DAYS = 20 * 365;
/** Validity of the broker's server certificate, made fresh at every start. */
const SERVER_DAYS = 398;
const DAY = 86_400_000;

/** Where the fleet CA lives: `DATA/keys/ca.cert.pem` and `ca.key.pem` (mode 0600), or files the operator brings. */
export interface FleetCaFiles {
  /** The CA certificate, PEM (`serve --ca-cert`). */
  certFile?: string;
  /** Its private key, PEM (`serve --ca-key`). */
  keyFile?: string;
}

/** The fleet CA: signs device certificates (the app's port) and the broker's server certificate. */
export interface FleetCa extends CertificateAuthority {
  certFile: string;
  /** True when this call made the CA. */
  created: boolean;
  /** A server certificate and its fresh key for the broker's TLS listener, for these DNS names and IP addresses. */
  issueServer(names: string[], now?: number): { certPem: string; keyPem: string };
}

/**
 * Load the fleet CA, or make one on first use (an ECDSA P-256 key and a self-signed
 * certificate, CN "edgeloop fleet CA"). A CA the operator brings must be a CA certificate in
 * its validity with a matching private key; anything else throws `FLEET_CA_INVALID`.
 */
export async function loadOrCreateFleetCa(keysDir: string, files: FleetCaFiles = {}, now = Date.now()): Promise<FleetCa> {
  if (!!files.certFile !== !!files.keyFile) throw new FleetError('CA_INVALID', 'give both --ca-cert and --ca-key, or neither (the fleet then makes its own CA)');
  const certFile = files.certFile ?? join(keysDir, 'ca.cert.pem');
  const keyFile = files.keyFile ?? join(keysDir, 'ca.key.pem');
  let certPem: string;
  let keyPem: string;
  let created = false;
  try {
    [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  } catch (err) {
    if (files.certFile || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FleetError('CA_INVALID', `cannot read the fleet CA (${certFile}, ${keyFile}): ${(err as Error).message}`, { cause: err });
    ({ certPem, keyPem } = makeCa(now));
    await mkdir(keysDir, { recursive: true });
    // The key first: a crash between the two leaves no certificate without its key.
    await writeFile(keyFile, keyPem, { mode: 0o600 });
    await writeFile(certFile, certPem);
    created = true;
  }
  return { ...openCa(certPem, keyPem, certFile, now), certFile, created };
}

function makeCa(now: number): { certPem: string; keyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const name = distinguishedName('edgeloop fleet CA', 'edgeloop');
  const cert = issueCertificate({ subject: name, issuer: name, publicKey, signingKey: privateKey, issuerKeyId: null, notBefore: now - 5 * 60_000, notAfter: now + CA_DAYS * DAY, kind: 'ca' });
  return { certPem: cert.pem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function openCa(certPem: string, keyPem: string, certFile: string, now: number): Omit<FleetCa, 'certFile' | 'created'> {
  const invalid = (why: string, cause?: unknown): FleetError => new FleetError('CA_INVALID', `the fleet CA ${certFile} cannot be used: ${why}`, { ...(cause ? { cause } : {}), details: { file: certFile } });
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw invalid(`not a PEM certificate (${(err as Error).message})`, err);
  }
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw invalid(`its key is not a PEM private key (${(err as Error).message})`, err);
  }
  if (!cert.ca) throw invalid('the certificate is not a CA (basicConstraints CA:TRUE)');
  if (!cert.checkPrivateKey(key)) throw invalid('the key does not belong to the certificate');
  if (Date.parse(cert.validTo) <= now) throw invalid(`the certificate expired on ${new Date(Date.parse(cert.validTo)).toISOString()}`);
  if (!['ec', 'rsa', 'ed25519'].includes(key.asymmetricKeyType ?? '')) throw invalid(`keys of type ${key.asymmetricKeyType ?? 'unknown'} cannot sign here (use EC, RSA or Ed25519)`);
  const issuer = subjectOf(cert);
  // Without a key id in the CA, name one from its key (what OpenSSL would compute).
  const issuerKeyId = issuer.keyId ?? keyIdentifier(cert.publicKey);
  const caPem = cert.toString();
  return {
    caPem,
    issueDevice: (o) => {
      const publicKey = devicePublicKey(o.publicKeyPem);
      const c = issueCertificate({
        subject: distinguishedName(o.deviceId),
        issuer: issuer.name,
        issuerKeyId,
        publicKey,
        signingKey: key,
        notBefore: o.notBefore,
        notAfter: o.notAfter,
        kind: 'client',
        altNames: { uris: [`urn:edgeloop:device:${o.deviceId}`] },
      });
      return { pem: c.pem, sha256: c.sha256, serial: c.serial };
    },
    issueServer: (names, at = Date.now()) => {
      const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const unique = [...new Set(['localhost', '127.0.0.1', '::1', hostname(), ...names].filter((n) => n && n !== '0.0.0.0' && n !== '::'))];
      const ips = unique.filter((n) => /^[\d.]+$/.test(n) || n.includes(':'));
      const dns = unique.filter((n) => !ips.includes(n));
      const c = issueCertificate({ subject: distinguishedName('edgeloop broker', 'edgeloop'), issuer: issuer.name, issuerKeyId, publicKey: pair.publicKey, signingKey: key, notBefore: at - 5 * 60_000, notAfter: at + SERVER_DAYS * DAY, kind: 'server', altNames: { dns, ips } });
      return { certPem: c.pem, keyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
    },
  };
}

/** The device's public key, if it is one the fleet certifies: EC P-256/P-384, RSA >= 2048, Ed25519. */
function devicePublicKey(pem: string): KeyObject {
  // createPublicKey would derive the public half of a private key: refuse those outright.
  if (pem.includes('PRIVATE KEY')) throw new FleetError('DEVICE_KEY_INVALID', 'send the public key only: the private key stays on the device');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new FleetError('DEVICE_KEY_INVALID', `the device public key is not a PEM public key: ${(err as Error).message}`, { cause: err });
  }
  const d = key.asymmetricKeyDetails;
  const ok =
    (key.asymmetricKeyType === 'ec' && (d?.namedCurve === 'prime256v1' || d?.namedCurve === 'secp384r1')) || (key.asymmetricKeyType === 'rsa' && (d?.modulusLength ?? 0) >= 2048) || key.asymmetricKeyType === 'ed25519';
  if (!ok) throw new FleetError('DEVICE_KEY_INVALID', `a ${key.asymmetricKeyType ?? 'unknown'} key${d?.namedCurve ? ` on ${d.namedCurve}` : ''}${d?.modulusLength ? ` of ${d.modulusLength} bits` : ''} is not certified: use EC P-256 (what edgeloop devices register --cert makes), P-384, RSA of 2048 bits or more, or Ed25519`);
  return key;
}
