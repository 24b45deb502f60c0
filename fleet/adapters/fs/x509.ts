import { createHash, randomBytes, sign, type KeyObject, type X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { bits, bool, children, explicit, nul, octets, oid, readElement, seq, set, time, tlv, uint, utf8 } from './der.js';

/**
 * X.509 v3 certificates (RFC 5280) written with node:crypto and a small DER writer, so the
 * fleet needs no `openssl` binary to issue them. Only what a fleet CA issues: a self-signed CA,
 * device client certificates and the broker's server certificate. Tested against `openssl
 * verify`, Node's TLS and mosquitto.
 */

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  rsaSha256: '1.2.840.113549.1.1.11',
  ed25519: '1.3.101.112',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** A distinguished name: CN, and O when given. */
export function distinguishedName(cn: string, o?: string): Buffer {
  const rdn = (type: string, value: string): Buffer => set(seq(oid(type), utf8(value)));
  return seq(...(o ? [rdn(OID.organization, o)] : []), rdn(OID.commonName, cn));
}

/** Who signs: the algorithm identifier and the digest node:crypto's `sign` takes, by key type. */
function signatureAlgorithm(key: KeyObject): { id: Buffer; digest: string | null } {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? { id: seq(oid(OID.ecdsaSha384)), digest: 'sha384' } : { id: seq(oid(OID.ecdsaSha256)), digest: 'sha256' };
    case 'rsa':
      return { id: seq(oid(OID.rsaSha256), nul()), digest: 'sha256' };
    case 'ed25519':
      return { id: seq(oid(OID.ed25519)), digest: null };
    default:
      throw new Error(`keys of type ${key.asymmetricKeyType ?? 'unknown'} cannot sign certificates here (use EC, RSA or Ed25519)`);
  }
}

/** RFC 5280 4.2.1.2 method 1: sha1 of the subjectPublicKey BIT STRING's bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const [, key] = children(readElement(spki).content);
  if (!key) throw new Error('SPKI without a key');
  return createHash('sha1').update(key.content.subarray(1)).digest();
}

const extension = (id: string, critical: boolean, value: Buffer): Buffer => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

export interface SubjectAltNames {
  uris?: string[];
  dns?: string[];
  ips?: string[];
}

function altNames(n: SubjectAltNames): Buffer {
  const ip = (a: string): Buffer => {
    if (isIP(a) === 4) return Buffer.from(a.split('.').map(Number));
    // IPv6: expand `::`, 8 groups of 16 bits.
    const [head = '', tail] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
  };
  return seq(
    ...(n.dns ?? []).map((d) => tlv(0x82, Buffer.from(d, 'ascii'))),
    ...(n.uris ?? []).map((u) => tlv(0x86, Buffer.from(u, 'ascii'))),
    ...(n.ips ?? []).map((a) => tlv(0x87, ip(a))),
  );
}

export interface CertificateRequest {
  subject: Buffer;
  publicKey: KeyObject;
  /** The issuer's subject exactly as encoded in its certificate (for a self-signed CA: `subject`). */
  issuer: Buffer;
  signingKey: KeyObject;
  /** Key id of the issuer (its subjectKeyIdentifier), for authorityKeyIdentifier; null: none. */
  issuerKeyId: Buffer | null;
  notBefore: number;
  notAfter: number;
  kind: 'ca' | 'client' | 'server';
  altNames?: SubjectAltNames;
}

export interface IssuedCertificate {
  pem: string;
  der: Buffer;
  /** sha256 of the DER, lowercase hex: what the broker compares at connect. */
  sha256: string;
  /** Serial number, lowercase hex. */
  serial: string;
}

/** Write and sign one certificate. */
export function issueCertificate(r: CertificateRequest): IssuedCertificate {
  const serialBytes = randomBytes(16);
  serialBytes[0] = (serialBytes[0]! & 0x7f) | 0x01; // positive, 16 bytes, never leading zero
  const alg = signatureAlgorithm(r.signingKey);
  const keyId = keyIdentifier(r.publicKey);
  const exts: Buffer[] = [
    extension(OID.basicConstraints, true, r.kind === 'ca' ? seq(bool(true)) : seq()),
    // keyCertSign + cRLSign (bits 5, 6) for the CA; digitalSignature (bit 0) for the others.
    extension(OID.keyUsage, true, r.kind === 'ca' ? tlv(0x03, Buffer.from([0x01, 0x06])) : tlv(0x03, Buffer.from([0x07, 0x80]))),
    ...(r.kind === 'ca' ? [] : [extension(OID.extKeyUsage, false, seq(oid(r.kind === 'client' ? OID.clientAuth : OID.serverAuth)))]),
    extension(OID.subjectKeyId, false, octets(keyId)),
    ...(r.issuerKeyId ? [extension(OID.authorityKeyId, false, seq(tlv(0x80, r.issuerKeyId)))] : []),
    ...(r.altNames ? [extension(OID.subjectAltName, false, altNames(r.altNames))] : []),
  ];
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))), // v3
    uint(serialBytes),
    alg.id,
    r.issuer,
    seq(time(r.notBefore), time(r.notAfter)),
    r.subject,
    r.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...exts)),
  );
  const der = seq(tbs, alg.id, bits(sign(alg.digest, tbs, r.signingKey)));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return { pem: `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`, der, sha256: certSha256(der), serial: serialBytes.toString('hex') };
}

/** sha256 of a certificate's DER, lowercase hex. */
function certSha256(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

/**
 * The subject name and subjectKeyIdentifier of a certificate, as encoded: a certificate the
 * CA issues names its issuer with these exact bytes (RFC 5280 7.1), and its
 * authorityKeyIdentifier must equal the CA's key id for OpenSSL to find the CA.
 */
export function subjectOf(cert: X509Certificate): { name: Buffer; keyId: Buffer | null } {
  const [tbs] = children(readElement(cert.raw).content);
  if (!tbs) throw new Error('certificate without TBSCertificate');
  const fields = children(tbs.content);
  // version [0] is optional: serial, signature, issuer, validity, subject, spki follow it.
  const start = fields[0]?.tag === 0xa0 ? 1 : 0;
  const name = fields[start + 4];
  if (!name) throw new Error('certificate without subject');
  let keyId: Buffer | null = null;
  const exts = fields.find((f) => f.tag === 0xa3);
  if (exts) {
    const [list] = children(exts.content);
    for (const ext of children(list?.content ?? Buffer.alloc(0))) {
      const parts = children(ext.content);
      if (parts[0]?.raw.equals(oid(OID.subjectKeyId))) {
        const value = parts[parts.length - 1];
        if (value) keyId = readElement(value.content).content;
      }
    }
  }
  return { name: Buffer.from(name.raw), keyId: keyId && Buffer.from(keyId) };
}
