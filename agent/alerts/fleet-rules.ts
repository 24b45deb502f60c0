import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { errorLine, isEdgeloopError } from '../../shared/errors.js';
import { sha256Hex } from '../../shared/ids.js';
import { ruleSetMessage, type AlertRuleSet, type DeviceRules, type RuleSetMessage, type SignedRuleSet } from '../../shared/schemas/index.js';
import { canonicalJson, signatureProblem } from '../../shared/signing.js';
import { formatIssues } from '../../shared/validate.js';
import { AgentError } from '../errors.js';
import { parseRuleSet } from './load.js';

/** The `rule_set` object of a message as it arrived (the message schema already said it is an object). */
const rawDocument = (data: unknown): Record<string, unknown> => (data as { rule_set: Record<string, unknown> }).rule_set;

/** Where a rule set goes once accepted: swapped in atomically (throws when it cannot be, and the running one stays). */
export type ApplyRuleSet = (set: Readonly<AlertRuleSet>, from: { name: string; version: number; sha256: string } | null) => Promise<void>;

export interface FleetRulesOptions {
  deviceId: string;
  /** The accepted message is kept here (written to a temporary name, then renamed): it survives a restart and works offline. */
  file: string;
  /** The fleet's public key (PEM); null: only `allowUnsigned` lets a rule set in. */
  publicKeyPem: string | null;
  allowUnsigned: boolean;
  /** The config file's rule set: what runs when the fleet sends none (or clears its own). */
  configRules: Readonly<AlertRuleSet>;
  apply: ApplyRuleSet;
  /** Called whenever what {@link FleetRules.report} says changes (the agent publishes its status). */
  changed: () => void;
  log: Logger;
}

/**
 * Rule sets from the fleet on the device: each retained message (or Greengrass configuration)
 * is checked before anything changes (newer revision, this device, signature by the fleet key,
 * sha256 of the rules, the agent's rule schema with every bad key named), then swapped in and
 * written to the data directory. A refused one is logged as `AGENT_RULE_SET_REFUSED`, reported
 * in device status, and the running rule set stays. A fleet rule set replaces the config's
 * rules while it is in force; a message with `rule_set: null` hands back to the config's.
 */
export class FleetRules {
  private revision = -1;
  private current: DeviceRules;
  private refused: DeviceRules['refused'];
  private key: KeyObject | null = null;
  private chain: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly o: FleetRulesOptions) {
    this.log = o.log.child({ component: 'rules' });
    this.current = o.configRules.rules.length > 0 ? { source: 'config' } : { source: 'none' };
    if (o.publicKeyPem) this.key = createPublicKey(o.publicKeyPem);
  }

  /** What device status says: the rule set in force and the last refusal. */
  report(): DeviceRules {
    return { ...this.current, ...(this.refused ? { refused: this.refused } : {}) };
  }

  /**
   * The rule set kept from a previous run, checked again (a changed file or key is refused and
   * the config's rules run); null when there is none or it no longer passes.
   */
  async restore(): Promise<{ set: Readonly<AlertRuleSet>; from: { name: string; version: number; sha256: string } } | null> {
    let text: string;
    try {
      text = await readFile(this.o.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      this.log.error({ file: this.o.file, reason: errorLine(err) }, 'kept fleet rule set cannot be read; the config rules run');
      return null;
    }
    try {
      const data: unknown = JSON.parse(text);
      const msg = this.message(data);
      if (!msg.rule_set) return null;
      const set = this.check(msg.rule_set, rawDocument(data));
      this.revision = msg.revision;
      const from = { name: msg.rule_set.name, version: msg.rule_set.version, sha256: msg.rule_set.sha256 };
      this.current = { source: 'fleet', ...from };
      this.log.info({ rule_set: `${from.name}@${from.version}`, revision: msg.revision }, 'fleet rule set restored from the data directory');
      return { set, from };
    } catch (err) {
      this.log.error({ file: this.o.file, code: isEdgeloopError(err) ? err.code : undefined, reason: errorLine(err) }, 'kept fleet rule set refused; the config rules run');
      return null;
    }
  }

  /**
   * The restored rule set cannot run here after all (its actions cannot be built: a Greengrass
   * action outside Greengrass mode): the config's rules run, and the retained message, when it
   * comes again, is checked afresh and refused visibly.
   */
  discardRestored(reason: string): void {
    this.revision = -1;
    this.current = this.o.configRules.rules.length > 0 ? { source: 'config' } : { source: 'none' };
    this.log.error({ code: 'AGENT_RULE_SET_REFUSED', reason }, 'kept fleet rule set cannot run here; the config rules run');
  }

  /** A message from the `rules` topic; never throws (a refusal is logged and reported). */
  onMessage(payload: Buffer | Uint8Array | string): Promise<void> {
    let data: unknown;
    try {
      data = JSON.parse(Buffer.from(typeof payload === 'string' ? Buffer.from(payload) : payload).toString('utf8'));
    } catch (err) {
      this.refuse(undefined, new AgentError('RULE_SET_REFUSED', `rule set message is not JSON: ${(err as Error).message}`));
      return Promise.resolve();
    }
    return this.submit(data);
  }

  /** A rule-set message (MQTT, or the Greengrass component configuration), applied in arrival order. */
  submit(data: unknown): Promise<void> {
    const run = (): Promise<void> => this.handle(data);
    this.chain = this.chain.then(run, run);
    return this.chain;
  }

  private async handle(data: unknown): Promise<void> {
    let msg: RuleSetMessage;
    try {
      msg = this.message(data);
    } catch (err) {
      this.refuse(undefined, err);
      return;
    }
    if (msg.revision <= this.revision) {
      this.log.debug({ revision: msg.revision, applied: this.revision }, 'rule set message not newer than the one applied; ignored');
      return;
    }
    const doc = msg.rule_set;
    try {
      if (doc === null) {
        await this.o.apply(this.o.configRules, null);
        this.current = this.o.configRules.rules.length > 0 ? { source: 'config' } : { source: 'none' };
        this.log.warn({ revision: msg.revision }, 'fleet rule set withdrawn; the config rules run');
      } else {
        const set = this.check(doc, rawDocument(data));
        const from = { name: doc.name, version: doc.version, sha256: doc.sha256 };
        await this.o.apply(set, from);
        this.current = { source: 'fleet', ...from };
        this.log.warn({ rule_set: `${doc.name}@${doc.version}`, sha256: doc.sha256, revision: msg.revision, rules: set.rules.length }, 'fleet rule set in force');
      }
    } catch (err) {
      this.refuse(msg, err);
      return;
    }
    this.revision = msg.revision;
    this.refused = undefined;
    await this.persist(msg);
    this.o.changed();
  }

  /** The message schema and the device id; `AGENT_RULE_SET_REFUSED` naming every bad key. */
  private message(data: unknown): RuleSetMessage {
    const r = ruleSetMessage.safeParse(data);
    if (!r.success) throw new AgentError('RULE_SET_REFUSED', `rule set message is invalid: ${formatIssues(r.error.issues).join('; ')}`);
    if (r.data.device_id !== this.o.deviceId) throw new AgentError('RULE_SET_REFUSED', `rule set message is for device ${r.data.device_id}, not ${this.o.deviceId}`);
    return r.data;
  }

  /** Signature (of the raw document: parsing may drop or default fields the signature covers), sha256 and the rule schema. */
  private check(doc: SignedRuleSet, raw: Record<string, unknown>): Readonly<AlertRuleSet> {
    const what = `rule set ${doc.name}@${doc.version}`;
    if (this.key && (doc.signature || !this.o.allowUnsigned)) {
      const why = signatureProblem(raw, this.key, 'rule set');
      if (why) throw new AgentError('RULE_SET_REFUSED', `${what}: signature invalid: ${why}`);
    } else if (!this.key && !this.o.allowUnsigned) {
      throw new AgentError('RULE_SET_REFUSED', `${what}: no fleet_public_key to verify it with (allow_unsigned is off)`);
    }
    const sha = sha256Hex(canonicalJson(doc.rules));
    if (sha !== doc.sha256) throw new AgentError('RULE_SET_REFUSED', `${what}: its rules hash to ${sha.slice(0, 12)}..., not the sha256 it names`);
    try {
      return parseRuleSet(doc.rules, what);
    } catch (err) {
      throw new AgentError('RULE_SET_REFUSED', (err as Error).message, { cause: err, ...(isEdgeloopError(err) && err.details ? { details: err.details } : {}) });
    }
  }

  private refuse(msg: RuleSetMessage | undefined, err: unknown): void {
    const e = isEdgeloopError(err) && err.code === 'AGENT_RULE_SET_REFUSED' ? err : new AgentError('RULE_SET_REFUSED', errorLine(err), { cause: err });
    const doc = msg?.rule_set;
    this.refused = { ...(doc ? { name: doc.name, version: doc.version } : {}), ...(msg ? { revision: msg.revision } : {}), code: e.code, message: e.message.slice(0, 1024) };
    this.log.error({ code: e.code, rule_set: doc ? `${doc.name}@${doc.version}` : undefined, revision: msg?.revision, reason: e.message, running: this.current }, 'fleet rule set refused; the running rule set stays');
    this.o.changed();
  }

  private async persist(msg: RuleSetMessage): Promise<void> {
    const tmp = `${this.o.file}.tmp`;
    try {
      await mkdir(dirname(this.o.file), { recursive: true });
      if (msg.rule_set === null) {
        await rm(this.o.file, { force: true });
        return;
      }
      await writeFile(tmp, JSON.stringify(msg));
      await rename(tmp, this.o.file);
    } catch (err) {
      // In force until the next restart; then the config's rules (or the older kept set) run until the retained message arrives again.
      this.log.error({ file: this.o.file, reason: errorLine(err) }, 'fleet rule set could not be kept in the data directory');
    }
  }
}
