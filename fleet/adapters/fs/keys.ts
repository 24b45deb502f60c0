import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKeyPair, keyIdOf, type SigningKeyPair } from '../../../shared/signing.js';
import { FleetError } from '../../errors.js';

/**
 * The fleet's ed25519 signing key in `dir` (fleet-signing.key, mode 0600, and
 * fleet-signing.pub for agents). Generated on first use.
 */
export async function loadOrCreateSigningKey(dir: string): Promise<SigningKeyPair & { created: boolean; publicKeyPath: string; privateKeyPath: string }> {
  const privateKeyPath = join(dir, 'fleet-signing.key');
  const publicKeyPath = join(dir, 'fleet-signing.pub');
  try {
    const privateKeyPem = await readFile(privateKeyPath, 'utf8');
    const publicKeyPem = await readFile(publicKeyPath, 'utf8');
    return { privateKeyPem, publicKeyPem, keyId: keyIdOf(publicKeyPem), created: false, publicKeyPath, privateKeyPath };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FleetError('KEY_INVALID', `cannot read the signing key in ${dir}: ${(err as Error).message}`, { cause: err });
  }
  await mkdir(dir, { recursive: true });
  const pair = generateSigningKeyPair();
  await writeFile(privateKeyPath, pair.privateKeyPem, { mode: 0o600 });
  await writeFile(publicKeyPath, pair.publicKeyPem);
  return { ...pair, created: true, publicKeyPath, privateKeyPath };
}
