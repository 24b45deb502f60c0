import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../../fleet/edges/client/api-client.js';
import { tarHeader } from '../../../fleet/edges/client/tar-pack.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { call, openTestFleet, pushDir } from './context.js';
import type { TestFleet } from './context.js';

/** One tar entry (header, body, padding): for archives `edgeloop models push` would never write. */
const entry = (name: string, body: Buffer, type = '0'): Buffer => Buffer.concat([tarHeader(name, body.length, type), body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
const archive = (...entries: Buffer[]): Buffer => Buffer.concat([...entries, Buffer.alloc(1024)]);

let f: TestFleet;
let base: string;
const pkgs = tempDir('edgeloop-upload-pkgs-');
const v1 = join(pkgs.dir, 'v1');
const MAX_FILE = 256 * 1024;
const MAX_TOTAL = 1024 * 1024;

type Err = { error: { code: string; message: string } };
const code = (r: { json: unknown }): string => (r.json as Err).error.code;
const upload = (raw: Buffer, type = 'application/x-tar'): ReturnType<typeof call> => call(base, 'POST', '/v1/models', { token: f.tokens.operator, raw, headers: { 'content-type': type } });
const uploadsDir = (): string => join(f.dir, 'uploads');

beforeAll(async () => {
  f = await openTestFleet({ uploadLimits: { maxBytes: MAX_TOTAL, maxFileBytes: MAX_FILE } });
  base = await f.listen();
  await imagePackage(v1, { seed: 1 });
});
afterAll(async () => {
  await f.close();
  pkgs.cleanup();
});

describe('POST /v1/models takes an upload, never a path on the fleet host', () => {
  it('registers a package the client streams as a tar, and leaves nothing in the staging directory', async () => {
    const client = new FleetClient({ url: base, token: f.tokens.operator });
    const r = await client.pushModel(v1);
    expect(r).toMatchObject({ created: true, version: { ref: 'pets@1.0.0', pushed_by: 'otto' } });
    expect((await client.pushModel(v1)).created).toBe(false);
    expect(readdirSync(uploadsDir())).toEqual([]);
    // The audit log has the push, with its actor.
    expect(f.ctx.audit.list({ actor: 'otto' }).items.find((e) => e.action === 'model.push')).toMatchObject({ target: 'pets@1.0.0' });
  });

  it('refuses a package without golden inputs (FLEET_GOLDEN_MISSING, 422, logged) unless ?force=true, as the CLI does before uploading', async () => {
    const bare = join(pkgs.dir, 'bare');
    await imagePackage(bare, { version: '9.0.0', extra: { golden: [] } });
    const client = new FleetClient({ url: base, token: f.tokens.operator });
    await expect(client.pushModel(bare)).rejects.toMatchObject({ code: 'FLEET_GOLDEN_MISSING', status: 422 });
    expect(f.logs.find((l) => l.msg === 'model package refused: no golden inputs')).toMatchObject({ model: 'pets@9.0.0', actor: 'otto' });
    expect(f.ctx.registry.find('pets', '9.0.0')).toBeNull();
    expect(readdirSync(uploadsDir())).toEqual([]);
    expect(await client.pushModel(bare, { force: true })).toMatchObject({ created: true, version: { ref: 'pets@9.0.0' } });
  });

  it('refuses a JSON body naming a directory (415): the regression of POST {"dir": "/etc"}', async () => {
    const r = await call(base, 'POST', '/v1/models', { token: f.tokens.operator, body: { dir: '/etc' } });
    expect([r.status, code(r)]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    expect(f.logs.find((l) => l.code === 'UNSUPPORTED_MEDIA_TYPE' && l.path === '/v1/models')).toMatchObject({ msg: 'request rejected', actor: 'otto' });
  });

  it('refuses names that leave the package, and links, with FLEET_UPLOAD_INVALID (logged), writing nothing outside', async () => {
    for (const [name, type] of [
      ['../escaped.txt', '0'],
      ['a/../../escaped.txt', '0'],
      ['/tmp/escaped.txt', '0'],
      ['link', '2'],
      ['hard', '1'],
    ] as const) {
      const r = await upload(archive(entry(name, Buffer.from('x'), type)));
      expect([name, r.status, code(r)]).toEqual([name, 400, 'FLEET_UPLOAD_INVALID']);
    }
    expect(existsSync(join(f.dir, 'escaped.txt'))).toBe(false);
    expect(existsSync('/tmp/escaped.txt')).toBe(false);
    expect(readdirSync(uploadsDir())).toEqual([]);
    expect(f.logs.find((l) => l.msg === 'model upload refused' && l.code === 'FLEET_UPLOAD_INVALID')).toMatchObject({ component: 'registry', actor: 'otto', reason: expect.stringMatching(/leaves the package/) });
  });

  it('caps one file and the whole upload (413 PAYLOAD_TOO_LARGE)', async () => {
    const big = await upload(archive(entry('manifest.json', Buffer.from('{}')), entry('model.onnx', Buffer.alloc(MAX_FILE + 1))));
    expect([big.status, code(big)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect((big.json as Err).error.message).toMatch(/one file may be at most 262144/);
    const parts = Array.from({ length: 5 }, (_, i) => entry(`part-${i}.bin`, Buffer.alloc(MAX_FILE - 1024)));
    const total = await upload(archive(...parts));
    expect([total.status, code(total)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect(readdirSync(uploadsDir())).toEqual([]);
  });

  it('checks every file against its sha256 in the manifest', async () => {
    const tampered = join(pkgs.dir, 'tampered');
    await imagePackage(tampered, { seed: 3, version: '3.0.0' });
    const model = join(tampered, 'model.onnx');
    const bytes = readFileSync(model);
    bytes.writeUInt8((bytes.at(-1) as number) ^ 0xff, bytes.length - 1);
    writeFileSync(model, bytes);
    const r = await pushDir(base, f.tokens.operator, tampered);
    expect([r.status, code(r)]).toEqual([422, 'MODEL_HASH_MISMATCH']);
    expect(f.ctx.registry.find('pets', '3.0.0')).toBeNull();
  });

  it('answers a manifest that is not JSON without echoing any of its bytes', async () => {
    const secret = 'root:x:0:0:root:/root:/bin/bash';
    const r = await upload(archive(entry('manifest.json', Buffer.from(secret))));
    expect([r.status, code(r)]).toEqual([422, 'MODEL_PACKAGE_INVALID']);
    const text = JSON.stringify(r.json);
    expect(text).toContain('manifest.json is not valid JSON');
    expect(text).not.toMatch(/root|bin\/bash/);
    expect(JSON.stringify(f.logs.filter((l) => l.code === 'MODEL_PACKAGE_INVALID'))).not.toMatch(/root:x/);
  });
});
