/**
 * Throwaway X.509 material made by openssl for mutual-TLS tests (AWS IoT Core's model: the
 * broker checks the client certificate against its CA, the client checks the broker): a CA, a
 * server certificate for 127.0.0.1/localhost and one client certificate, all EC P-256, valid
 * one day. The files stay in `dir` (`ca.pem`, `server.pem`/`.key`, `client.pem`/`.key`) for
 * brokers that read paths (mosquitto).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingBinary } from './optional-binary.js';

export const OPENSSL = '/usr/bin/openssl';

/** Null when openssl is installed; otherwise why mutual-TLS tests are skipped. */
export function opensslSkipReason(): string | null {
  return missingBinary(OPENSSL, 'cannot make test certificates (install the Debian package "openssl")');
}

export type TestPki = Record<'ca' | 'serverKey' | 'serverCert' | 'clientKey' | 'clientCert', Buffer> & { dir: string };

export function makePki(dir: string, o: { caCn?: string; clientCn?: string } = {}): TestPki {
  const run = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', `/CN=${o.caCn ?? 'edgeloop-test-ca'}`);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, subj, ext] of [
    ['server', '/CN=localhost', ['-extfile', 'server.ext']],
    ['client', `/CN=${o.clientCn ?? 'dev-tls'}`, []],
  ] as const) {
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', ...ext);
  }
  const read = (f: string) => readFileSync(join(dir, f));
  return { dir, ca: read('ca.pem'), serverKey: read('server.key'), serverCert: read('server.pem'), clientKey: read('client.key'), clientCert: read('client.pem') };
}

/** Another client certificate (`<name>.pem`/`.key` in the PKI's dir) signed by the same CA. */
export function issueClientCert(pki: TestPki, name: string, cn = name): Pick<TestPki, 'clientCert' | 'clientKey'> {
  const run = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: pki.dir, stdio: 'pipe' });
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1');
  return { clientCert: readFileSync(join(pki.dir, `${name}.pem`)), clientKey: readFileSync(join(pki.dir, `${name}.key`)) };
}
