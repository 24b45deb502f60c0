import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FleetRules } from '../../../agent/alerts/fleet-rules.js';
import { parseRuleSet } from '../../../agent/alerts/load.js';
import { sha256Hex } from '../../../shared/ids.js';
import type { AlertRuleSet, RuleSetMessage, SignedRuleSet } from '../../../shared/schemas/index.js';
import { canonicalJson, generateSigningKeyPair, signManifest } from '../../../shared/signing.js';
import { captureLogger } from '../../helpers/agent.js';
import { fleetKeys, tempDir } from '../../helpers/packages.js';

const tmp = tempDir('edgeloop-fleet-rules-');
afterAll(() => tmp.cleanup());

const RULES = { rules: [{ id: 'haul-road', model: 'det', labels: ['person'], zone: { polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]] } }] };
const CONFIG_RULES = parseRuleSet({ rules: [{ id: 'from-config', model: 'det' }] });

function signed(rules: Record<string, unknown>, o: { name?: string; version?: number; key?: string; sha256?: string } = {}): SignedRuleSet {
  const doc = { name: o.name ?? 'haul', version: o.version ?? 1, sha256: o.sha256 ?? sha256Hex(canonicalJson(rules)), rules, created_at: '2026-12-01T00:00:00.000Z' };
  return signManifest(doc, o.key ?? fleetKeys().privateKeyPem) as SignedRuleSet;
}

function message(doc: SignedRuleSet | null, revision: number, device = 'dev-1'): RuleSetMessage {
  return { type: 'rule_set', v: 1, device_id: device, revision, issued_at: '2026-12-01T00:00:00.000Z', rule_set: doc };
}

function host(name: string, o: { publicKeyPem?: string | null; allowUnsigned?: boolean; failApply?: boolean } = {}): { rules: FleetRules; applied: Array<Readonly<AlertRuleSet>>; changes: number[]; file: string; lines: Array<Record<string, unknown>> } {
  const applied: Array<Readonly<AlertRuleSet>> = [];
  const changes: number[] = [];
  const file = join(tmp.dir, name, 'fleet-rule-set.json');
  const { log, lines } = captureLogger('debug');
  const rules = new FleetRules({
    deviceId: 'dev-1',
    file,
    publicKeyPem: o.publicKeyPem === undefined ? fleetKeys().publicKeyPem : o.publicKeyPem,
    allowUnsigned: o.allowUnsigned ?? false,
    configRules: CONFIG_RULES,
    apply: (set) => {
      if (o.failApply) return Promise.reject(new Error('actions cannot be built here'));
      applied.push(set);
      return Promise.resolve();
    },
    changed: () => changes.push(changes.length),
    log,
  });
  return { rules, applied, changes, file, lines };
}

const send = (r: FleetRules, m: unknown): Promise<void> => r.onMessage(Buffer.from(JSON.stringify(m)));

describe('rule sets from the fleet on the device', () => {
  it('a signed rule set is applied, reported and kept on disk; an older or equal revision is ignored', async () => {
    const h = host('ok');
    expect(h.rules.report()).toEqual({ source: 'config' });
    const doc = signed(RULES);
    await send(h.rules, message(doc, 5));
    expect(h.applied.map((s) => s.rules.map((r) => r.id))).toEqual([['haul-road']]);
    expect(h.rules.report()).toEqual({ source: 'fleet', name: 'haul', version: 1, sha256: doc.sha256 });
    expect(JSON.parse(readFileSync(h.file, 'utf8'))).toMatchObject({ revision: 5, rule_set: { name: 'haul', version: 1 } });
    await send(h.rules, message(signed(RULES, { version: 2 }), 5));
    expect(h.applied).toHaveLength(1);
    // A withdrawal hands back to the config's rules.
    await send(h.rules, message(null, 6));
    expect(h.applied.at(-1)).toBe(CONFIG_RULES);
    expect(h.rules.report()).toEqual({ source: 'config' });
  });

  it('survives a restart: the kept rule set is checked again and restored; a tampered file is refused', async () => {
    const h = host('restart');
    const doc = signed(RULES, { version: 3 });
    await send(h.rules, message(doc, 7));
    const again = host('restart');
    const restored = await again.rules.restore();
    expect(restored?.from).toEqual({ name: 'haul', version: 3, sha256: doc.sha256 });
    expect(restored?.set.rules[0]?.id).toBe('haul-road');
    expect(again.rules.report()).toMatchObject({ source: 'fleet', version: 3 });
    // The revision came back too: the retained message replayed at reconnect is not applied twice.
    await send(again.rules, message(doc, 7));
    expect(again.applied).toEqual([]);
    // Someone edits the kept file: its signature no longer verifies, the config's rules run.
    const kept = JSON.parse(readFileSync(h.file, 'utf8')) as RuleSetMessage;
    (kept.rule_set!.rules['rules'] as Array<Record<string, unknown>>)[0]!['labels'] = ['truck'];
    writeFileSync(h.file, JSON.stringify(kept));
    const third = host('restart');
    expect(await third.rules.restore()).toBeNull();
    expect(third.rules.report()).toEqual({ source: 'config' });
    expect(third.lines.some((l) => l['code'] === 'AGENT_RULE_SET_REFUSED')).toBe(true);
  });

  it('a restored rule set that cannot run here is discarded: the config rules are reported, and the retained message is checked afresh', async () => {
    const h = host('discard');
    const doc = signed(RULES, { version: 4 });
    await send(h.rules, message(doc, 9));
    const again = host('discard');
    expect(await again.rules.restore()).not.toBeNull();
    again.rules.discardRestored('its greengrass actions need Greengrass mode');
    expect(again.rules.report()).toEqual({ source: 'config' });
    expect(again.lines.some((l) => l['code'] === 'AGENT_RULE_SET_REFUSED' && l['reason'] === 'its greengrass actions need Greengrass mode')).toBe(true);
    await send(again.rules, message(doc, 9));
    expect(again.applied).toHaveLength(1);
  });

  const refusals: Array<[string, (h: ReturnType<typeof host>) => unknown, string]> = [
    ['signed by another key', () => message(signed(RULES, { key: generateSigningKeyPair().privateKeyPem }), 1), 'signature invalid: signed by key'],
    ['changed after signing', () => {
      const m = message(signed(RULES), 1);
      return { ...m, rule_set: { ...m.rule_set!, version: 9 } };
    }, 'changed after signing'],
    ['rules that do not hash to its sha256', () => message(signed(RULES, { sha256: 'a'.repeat(64) }), 1), 'not the sha256 it names'],
    ['an invalid rule (every bad key named)', () => message(signed({ rules: [{ id: 'x', model: 'det', min_score: 3, hold_s: -1 }] }), 1), 'rules.0.min_score'],
    ['for another device', () => message(signed(RULES), 1, 'dev-2'), 'for device dev-2'],
    ['not a rule-set message', () => ({ type: 'rule_set', revision: 'x' }), 'rule set message is invalid'],
  ];
  for (const [what, make, reason] of refusals) {
    it(`refuses a rule set ${what}: AGENT_RULE_SET_REFUSED logged and reported, the running set stays`, async () => {
      const h = host(`refuse-${what.replace(/\W+/g, '-')}`);
      const good = signed(RULES);
      await send(h.rules, message(good, 1));
      await send(h.rules, { ...(make(h) as Record<string, unknown>), revision: 2 });
      expect(h.applied).toHaveLength(1);
      const r = h.rules.report();
      expect(r).toMatchObject({ source: 'fleet', name: 'haul', version: 1, refused: { code: 'AGENT_RULE_SET_REFUSED' } });
      expect(r.refused?.message).toContain(reason);
      const line = h.lines.find((l) => l['code'] === 'AGENT_RULE_SET_REFUSED');
      expect(line?.['msg']).toBe('fleet rule set refused; the running rule set stays');
      // The next good one clears the refusal.
      await send(h.rules, message(signed(RULES, { version: 2 }), 3));
      expect(h.rules.report()).toEqual({ source: 'fleet', name: 'haul', version: 2, sha256: good.sha256 });
    });
  }

  it('an unsigned rule set is refused unless allow_unsigned; a rule set the agent cannot build is refused', async () => {
    const unsigned = { ...signed(RULES) } as Partial<SignedRuleSet>;
    delete unsigned.signature;
    const strict = host('unsigned-strict', { publicKeyPem: null });
    await send(strict.rules, message(unsigned as SignedRuleSet, 1));
    expect(strict.rules.report().refused?.message).toContain('no fleet_public_key');
    const dev = host('unsigned-dev', { publicKeyPem: null, allowUnsigned: true });
    await send(dev.rules, message(unsigned as SignedRuleSet, 1));
    expect(dev.rules.report()).toMatchObject({ source: 'fleet', name: 'haul' });
    const failing = host('apply-fails', { failApply: true });
    await send(failing.rules, message(signed(RULES), 1));
    expect(failing.rules.report()).toMatchObject({ source: 'config', refused: { code: 'AGENT_RULE_SET_REFUSED', name: 'haul', version: 1 } });
    expect(failing.rules.report().refused?.message).toContain('actions cannot be built here');
  });
});
