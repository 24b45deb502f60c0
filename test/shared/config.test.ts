import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadAgentConfig } from '../../agent/config.js';
import { loadAwsConfig } from '../../fleet/adapters/aws/aws-config.js';
import { loadTrainingConfig } from '../../fleet/boot/training-config.js';
import { EdgeloopError } from '../../shared/errors.js';
import { configFromText, parseConfig, type ConfigKind } from '../../shared/config.js';
import { tempDir } from '../helpers/packages.js';

const kind: ConfigKind = { what: 'test configuration', error: (m, o) => new EdgeloopError('TEST_CONFIG_INVALID', m, { status: 400, ...o }) };
const schema = z.strictObject({ port: z.number().int().max(65535), tags: z.array(z.strictObject({ k: z.string() })).default([]), dir: z.string().default('d') });

describe('shared config parsing (parseConfig, configFromText)', () => {
  it('names every issue with its key path in one coded error, the path of the file included', () => {
    let err: unknown;
    try {
      configFromText(schema, JSON.stringify({ port: 70000, tags: [{ k: 1 }], extra: true }), kind, '/etc/t.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EdgeloopError);
    expect(err).toMatchObject({ code: 'TEST_CONFIG_INVALID', details: { issues: ['port: Too big: expected number to be <=65535', 'tags.0.k: Invalid input: expected string, received number', '(root): Unrecognized key: "extra"'] } });
    expect((err as Error).message).toBe(`test configuration /etc/t.json is invalid: ${((err as EdgeloopError).details?.issues as string[]).join('; ')}`);
    expect(() => configFromText(schema, '{ port: ', kind, '/etc/t.json')).toThrow(expect.objectContaining({ code: 'TEST_CONFIG_INVALID', message: expect.stringMatching(/^test configuration \/etc\/t\.json is not valid JSON: /) }));
  });

  it('runs the extra checks even when the schema fails, so one error names every bad key', () => {
    const check = (data: unknown, parsed: unknown): string[] => [`dir: checked (${parsed === undefined ? 'raw' : 'parsed'} ${JSON.stringify((data as { dir?: unknown }).dir)})`];
    expect(() => parseConfig(schema, { port: 'x', dir: 'a' }, kind, { check })).toThrow(expect.objectContaining({ details: { issues: ['port: Invalid input: expected number, received string', 'dir: checked (raw "a")'] } }));
    expect(() => parseConfig(schema, { port: 1, dir: 'a' }, kind, { check })).toThrow(expect.objectContaining({ message: 'test configuration is invalid: dir: checked (parsed "a")' }));
  });

  it('finishes, then deep-freezes the value', () => {
    const c = parseConfig(schema, { port: 1, tags: [{ k: 'a' }] }, kind, { finish: (v) => void (v.dir = `/base/${v.dir}`) });
    expect(c.dir).toBe('/base/d');
    expect(Object.isFrozen(c) && Object.isFrozen(c.tags) && Object.isFrozen(c.tags[0])).toBe(true);
  });
});

describe('every config loader reads, parses and refuses the same way, with its own code', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir('edgeloop-config-');
  });
  afterEach(() => t.cleanup());

  const loaders = [
    { what: 'agent configuration', code: 'AGENT_CONFIG_INVALID', load: async (p: string): Promise<unknown> => loadAgentConfig(p, {}), bad: { uplink: { colour: 'x' } }, key: 'uplink' },
    { what: 'AWS configuration', code: 'FLEET_AWS_CONFIG_INVALID', load: loadAwsConfig, bad: { region: 'mars' }, key: 'region' },
    { what: 'training configuration', code: 'FLEET_TRAINING_CONFIG_INVALID', load: loadTrainingConfig, bad: { models: [], tick_s: 0 }, key: 'tick_s' },
  ];
  for (const l of loaders) {
    it(`${l.what}: unreadable, not JSON, bad keys`, async () => {
      const missing = join(t.dir, 'missing.json');
      await expect(l.load(missing)).rejects.toMatchObject({ code: l.code, message: expect.stringMatching(new RegExp(`^cannot read the ${l.what} ${missing}: ENOENT`)) });
      const text = join(t.dir, 'bad.json');
      writeFileSync(text, '{ nope');
      await expect(l.load(text)).rejects.toMatchObject({ code: l.code, message: expect.stringMatching(new RegExp(`^${l.what} ${text} is not valid JSON: `)) });
      const bad = join(t.dir, 'keys.json');
      writeFileSync(bad, JSON.stringify(l.bad));
      await expect(l.load(bad)).rejects.toMatchObject({ code: l.code, message: expect.stringMatching(new RegExp(`^${l.what}( ${bad})? is invalid: .*${l.key}`)), details: { issues: expect.arrayContaining([expect.stringMatching(new RegExp(`^${l.key}`))]) } });
    });
  }
});
