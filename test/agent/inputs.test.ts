import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryWatcher } from '../../agent/inputs/watch-dir.js';
import { directorySource } from '../../agent/model/store.js';
import { errorReply, inferResult, type InferResult } from '../../shared/schemas/index.js';
import { startTestAgent } from '../helpers/agent.js';
import { imagePackage, patternImage, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

const until = (cond: () => boolean, ms = 20_000): Promise<void> => waitUntil(cond, ms);

describe('watched directory', () => {
  it('writes a JSON line per file, moves processed files, and keeps failed ones', async () => {
    await imagePackage(join(tmp.dir, 'pets'));
    const inbox = join(tmp.dir, 'inbox');
    const { agent } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: join(tmp.dir, 'pets') }, http: { enabled: false }, watch: { enabled: true, dir: inbox, poll_ms: 50 } });
    try {
      for (let i = 0; i < 5; i++) writeFileSync(join(inbox, `frame-${i}.jpg`), await patternImage(i, { format: 'jpeg' }));
      writeFileSync(join(inbox, 'broken.png'), 'not a png at all');
      writeFileSync(join(inbox, 'notes.txt'), 'ignored');
      const results = join(inbox, 'results.jsonl');
      await until(() => existsSync(results) && readFileSync(results, 'utf8').trim().split('\n').length >= 6);
      const lines = readFileSync(results, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const ok = lines.filter((l) => !l.error);
      expect(ok.map((l) => l.file).sort()).toEqual(['frame-0.jpg', 'frame-1.jpg', 'frame-2.jpg', 'frame-3.jpg', 'frame-4.jpg']);
      for (const l of ok) inferResult.parse(Object.fromEntries(Object.entries(l).filter(([k]) => k !== 'file' && k !== 'ts')));
      expect(lines.find((l) => l.file === 'broken.png')).toMatchObject({ error: { code: 'IMAGE_DECODE_FAILED' } });
      await until(() => readdirSync(join(inbox, 'processed')).length === 5);
      expect(readdirSync(join(inbox, 'failed'))).toEqual(['broken.png']);
      expect(readdirSync(inbox).sort()).toEqual(['failed', 'notes.txt', 'processed', 'results.jsonl']);
    } finally {
      await agent.stop();
    }
  });

  it('does not read a file that is still being written', async () => {
    // Scans driven by the test, not by the watcher's timer: a writer that stalls (a loaded
    // machine, a slow camera) must not decide the outcome. The rule under test: a file is taken
    // only after two scans saw the same size, so every partial size is refused.
    const inbox = join(tmp.dir, 'inbox');
    mkdirSync(inbox, { recursive: true });
    const seen: Uint8Array[] = [];
    const watcher = new DirectoryWatcher(
      { dir: inbox, resultsFile: join(inbox, 'results.jsonl'), after: 'delete', processedDir: join(inbox, 'processed'), failedDir: join(inbox, 'failed'), pollMs: 100, extensions: ['.png'], concurrency: 1 },
      (input) => {
        if (input.kind === 'image') seen.push(input.bytes);
        return Promise.resolve([{ label: 'ok' } as unknown as InferResult]);
      },
      pino({ level: 'silent' }),
    );
    const img = await patternImage(1, { format: 'png', width: 200, height: 200 });
    const path = join(inbox, 'slow.png');
    // A camera writing in pieces: the size changes between every two scans.
    for (let i = 1; i <= 4; i++) {
      writeFileSync(path, img.subarray(0, Math.floor((img.length * i) / 4)));
      expect(await watcher.scan()).toBe(0);
    }
    // Complete and unchanged since the last scan: taken now, once, whole.
    expect(await watcher.scan()).toBe(1);
    expect(existsSync(path)).toBe(false);
    expect(seen).toHaveLength(1);
    expect(Buffer.from(seen[0]!).equals(img)).toBe(true);
    const lines = readFileSync(join(inbox, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { error?: unknown });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.error).toBeUndefined();
  });
});

describe('local MQTT input', () => {
  it('answers requests on the reply topic and malformed ones with an error code', async () => {
    const broker = await Aedes.createBroker();
    const server = net.createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    await imagePackage(join(tmp.dir, 'pets'));
    const { agent } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: join(tmp.dir, 'pets') }, http: { enabled: false }, local_mqtt: { enabled: true, url } });
    const client = await mqtt.connectAsync(url);
    try {
      const got: unknown[] = [];
      client.on('message', (_t, p) => got.push(JSON.parse(p.toString())));
      await client.subscribeAsync('cam/replies', { qos: 1 });
      await client.publishAsync('edgeloop/local/infer', JSON.stringify({ request_id: 'r1', image_b64: (await patternImage(4)).toString('base64'), reply_to: 'cam/replies' }), { qos: 1 });
      await client.publishAsync('edgeloop/local/infer', JSON.stringify({ request_id: 'r2', image_b64: 'AAAA', reply_to: 'cam/replies' }), { qos: 1 });
      await client.publishAsync('edgeloop/local/infer', '{"garbage', { qos: 1 });
      await client.subscribeAsync('edgeloop/local/results', { qos: 1 });
      await client.publishAsync('edgeloop/local/infer', JSON.stringify({ request_id: 'r3', image_b64: (await patternImage(5)).toString('base64') }), { qos: 1 });
      const has = (id: string): boolean => got.some((g) => (g as { request_id?: string }).request_id === id);
      await until(() => has('r1') && has('r2') && has('r3'));
      expect(inferResult.parse(got.find((g) => (g as { request_id?: string }).request_id === 'r1'))).toBeTruthy();
      expect(errorReply.parse(got.find((g) => (g as { request_id?: string }).request_id === 'r2'))).toMatchObject({ error: { code: 'IMAGE_DECODE_FAILED' } });
      expect(got.find((g) => (g as { request_id?: string }).request_id === 'r3')).toMatchObject({ type: 'infer_result' });
    } finally {
      await client.endAsync();
      await agent.stop();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    }
  });
});

describe('model switch under load', () => {
  it('switches versions while requests keep coming, with zero failed requests', async () => {
    await imagePackage(join(tmp.dir, 'v1'), { version: '1.0.0', seed: 1 });
    await imagePackage(join(tmp.dir, 'v2'), { version: '2.0.0', seed: 2 });
    await imagePackage(join(tmp.dir, 'v3'), { version: '3.0.0', seed: 3 });
    const { agent, url } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: join(tmp.dir, 'v1') } });
    try {
      const img = await patternImage(7);
      const versions: string[] = [];
      const failures: unknown[] = [];
      let stop = false;
      const client = async (): Promise<void> => {
        while (!stop) {
          const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: img }).catch((e: unknown) => e);
          if (!(res instanceof Response) || res.status !== 200) failures.push(res instanceof Response ? await res.text() : res);
          else versions.push(((await res.json()) as { model_version: string }).model_version);
        }
      };
      const clients = Array.from({ length: 6 }, client);
      await until(() => versions.length > 20);
      await agent.install(directorySource(join(tmp.dir, 'v2')));
      const at2 = versions.length;
      await until(() => versions.length > at2 + 20);
      await agent.install(directorySource(join(tmp.dir, 'v3')));
      const at3 = versions.length;
      await until(() => versions.length > at3 + 20);
      stop = true;
      await Promise.all(clients);
      expect(failures).toEqual([]);
      expect(new Set(versions)).toEqual(new Set(['1.0.0', '2.0.0', '3.0.0']));
      // Once a switch completed, new requests never see the older version again.
      expect(versions.slice(at3 + 6)).not.toContain('2.0.0');
    } finally {
      await agent.stop();
    }
  });
});
