import type { Logger } from 'pino';
import { z } from 'zod';
import { parseConfig } from '../../../shared/config.js';
import { sha256Hex, type Clock } from '../../../shared/ids.js';
import { alertRuleSet, RULE_SET_MAX_BYTES, ruleSetProblems, type AlertRuleSet, type RuleSetMessage, type SignedRuleSet } from '../../../shared/schemas/index.js';
import { canonicalJson, signManifest } from '../../../shared/signing.js';
import { FleetError } from '../../errors.js';
import type { Audit } from '../audit.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { SampleFilter, SampleQuery } from '../samples/filter.js';
import type { SamplePage, SampleRecord } from '../samples/types.js';
import { replayRuleSet, type ReplayReport } from './replay.js';

/** Samples replayed by `rules test` at most by default, and at most at all. */
const DEFAULT_REPLAY_SAMPLES = 10_000;
const MAX_REPLAY_SAMPLES = 100_000;

/** A stored rule set version as the API, the CLI and the console list it. */
export interface RuleSetInfo {
  name: string;
  version: number;
  sha256: string;
  rules: number;
  created_at: string;
  created_by: string;
  /** Devices this version was last sent to. */
  devices: number;
}

/** The rule set a device was last sent (what it should run); name and version null: withdrawn (its config's rules). */
export interface RuleSetAssignment {
  device_id: string;
  name: string | null;
  version: number | null;
  revision: number;
  assigned_at: string;
  assigned_by: string;
}

/** Where rule sets live (`rule_sets`, `rule_set_assignments`). Failures throw `FLEET_STORAGE_FAILED`; lookups that miss return null. */
export interface RuleSetsRepo {
  /** Store `make(version)` as the next version of `name` (1 for a new name), atomically; returns the stored document. */
  insertNext(name: string, make: (version: number) => SignedRuleSet, by: string, at: number): SignedRuleSet;
  find(name: string, version: number): SignedRuleSet | null;
  latest(name: string): SignedRuleSet | null;
  /** Every version, name then version; with the devices each was last sent to. */
  list(): RuleSetInfo[];
  /**
   * Record that these devices are sent `name@version`; returns each device's new revision,
   * above its previous one and at least `at` (so a fresh database still outranks what a device applied).
   */
  assign(deviceIds: readonly string[], name: string | null, version: number | null, by: string, at: number): Array<{ device_id: string; revision: number }>;
  assignmentOf(deviceId: string): RuleSetAssignment | null;
  /** Remember the latest deployment (or withdrawal: name and version null) per selector: it stands for devices registered later. */
  recordDeployment(selector: Record<string, string>, name: string | null, version: number | null, by: string, at: number): void;
  /** Every standing deployment, newest first. */
  deployments(): StandingDeployment[];
}

/** A deployment that stands: devices with the selector's tags run `name@version` (null: their config's rules). */
export interface StandingDeployment {
  selector: Record<string, string>;
  name: string | null;
  version: number | null;
  deployed_at: number;
}

/** How a rule set reaches a device: the retained per-device message (MQTT), or another channel. */
export interface RuleSetDelivery {
  deliver(messages: readonly RuleSetMessage[]): Promise<void>;
}

const ruleSetName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lowercase letters, digits and . _ - (at most 64)');

/** `name@version` (version a positive integer), or `name` alone (the latest). */
export function parseRuleSetRef(ref: string): { name: string; version: number | null } {
  const m = /^([^@]+)(?:@(\d{1,9}))?$/.exec(ref);
  if (!m || !ruleSetName.safeParse(m[1]).success) throw new FleetError('INPUT_INVALID', `not a rule set reference: ${ref.slice(0, 80)} (expected NAME@VERSION)`);
  return { name: m[1]!, version: m[2] ? Number(m[2]) : null };
}

/** A rule set from JSON data, checked with the agent's own schema: every bad key named in one `FLEET_RULE_SET_INVALID`. */
function validateRuleSet(data: unknown, path?: string): Readonly<AlertRuleSet> {
  return parseConfig(alertRuleSet, data, { what: 'alert rule set', error: (m, o) => new FleetError('RULE_SET_INVALID', m, o) }, { ...(path ? { path } : {}), check: (raw) => ruleSetProblems(raw) });
}

/**
 * Alert rule sets: pushed as immutable, signed, numbered versions (the fleet's ed25519 key, the
 * one model packages are signed with), deployed to the devices a tag selector picks, each
 * device getting a retained message with the rule set inline and a revision. Audited:
 * `rules.push`, `rules.deploy`.
 */
export class RuleSets {
  constructor(
    private readonly o: {
      repo: RuleSetsRepo;
      devices: Pick<DeviceRegistry, 'list'>;
      samples: { query(q: SampleQuery): SamplePage };
      clock: Clock;
      audit: Audit;
      log: Logger;
      signingKey: { privateKeyPem: string };
      /** Filled once the service's broker client is up (tests pass a recorder). */
      delivery: () => RuleSetDelivery | null;
    },
  ) {}

  /** Validate (every bad key named), sign and store as the next version of `name`. */
  push(name: string, data: unknown, o: { actor: string }): SignedRuleSet {
    if (!ruleSetName.safeParse(name).success) throw new FleetError('INPUT_INVALID', `rule set name ${JSON.stringify(name.slice(0, 80))}: lowercase letters, digits and . _ - (at most 64)`);
    validateRuleSet(data);
    const rules = data as Record<string, unknown>;
    const canonical = canonicalJson(rules);
    const bytes = Buffer.byteLength(canonical);
    if (bytes > RULE_SET_MAX_BYTES) throw new FleetError('RULE_SET_TOO_LARGE', `rule set ${name} is ${bytes} bytes; at most ${RULE_SET_MAX_BYTES} travel inline to a device`, { details: { bytes, max: RULE_SET_MAX_BYTES } });
    const sha256 = sha256Hex(canonical);
    const now = this.o.clock.now();
    const doc = this.o.repo.insertNext(name, (version) => signManifest({ name, version, sha256, rules, created_at: new Date(now).toISOString() }, this.o.signingKey.privateKeyPem) as SignedRuleSet, o.actor, now);
    this.o.audit.record({ actor: o.actor, action: 'rules.push', target: `${name}@${doc.version}`, details: { sha256, rules: Array.isArray(rules['rules']) ? rules['rules'].length : 0 } });
    this.o.log.info({ rule_set: `${name}@${doc.version}`, sha256, actor: o.actor }, 'rule set stored');
    return doc;
  }

  /**
   * What a rule set (validated first, every bad key named) would have raised over the stored
   * samples the filter picks, oldest first per device and camera, through the agent's engine.
   */
  test(data: unknown, filter: SampleFilter, o: { maxSamples?: number } = {}): ReplayReport {
    const set = validateRuleSet(data);
    // The size a deploy would accept: the replay's cost (samples x rules, on the event loop) stays bounded.
    const bytes = Buffer.byteLength(canonicalJson(data as Record<string, unknown>));
    if (bytes > RULE_SET_MAX_BYTES) throw new FleetError('RULE_SET_TOO_LARGE', `the rule set is ${bytes} bytes; at most ${RULE_SET_MAX_BYTES} (what a device can be sent)`, { details: { bytes, max: RULE_SET_MAX_BYTES } });
    const max = Math.max(1, Math.min(o.maxSamples ?? DEFAULT_REPLAY_SAMPLES, MAX_REPLAY_SAMPLES));
    const samples: SampleRecord[] = [];
    let cursor: string | undefined;
    let truncated = false;
    for (;;) {
      const page = this.o.samples.query({ ...filter, limit: 1000, order: 'asc', ...(cursor ? { cursor } : {}) });
      for (const s of page.items) {
        if (samples.length >= max) {
          truncated = true;
          break;
        }
        samples.push(s);
      }
      if (truncated || !page.next_cursor) break;
      cursor = page.next_cursor;
    }
    return replayRuleSet(set, samples, { clock: this.o.clock, truncated });
  }

  list(): RuleSetInfo[] {
    return this.o.repo.list();
  }

  /** `name@version`, or the latest version of `name`. Throws `FLEET_RULE_SET_NOT_FOUND`. */
  get(name: string, version: number | null): SignedRuleSet {
    const doc = version === null ? this.o.repo.latest(name) : this.o.repo.find(name, version);
    if (!doc) throw new FleetError('RULE_SET_NOT_FOUND', `no rule set ${name}${version === null ? '' : `@${version}`}`, { details: { name, version } });
    return doc;
  }

  /** The rule set a device was last sent, or null. */
  assignmentOf(deviceId: string): RuleSetAssignment | null {
    return this.o.repo.assignmentOf(deviceId);
  }

  /**
   * Send `name@version` to every device holding all the selector's tags: a new revision each,
   * recorded before the retained messages go out (a failed delivery is retried by deploying
   * again; the devices keep what they run meanwhile). The deployment stands for the selector:
   * devices registered later with matching tags get it too, even when none matches today.
   */
  async deploy(name: string, version: number, selector: Record<string, string>, o: { actor: string }): Promise<{ rule_set: { name: string; version: number; sha256: string }; devices: string[] }> {
    const doc = this.get(name, version);
    const devices = await this.send(doc, selector, `${name}@${version}`, o.actor);
    this.o.repo.recordDeployment(selector, name, version, o.actor, this.o.clock.now());
    this.o.audit.record({ actor: o.actor, action: 'rules.deploy', target: `${name}@${version}`, details: { selector, devices: devices.length } });
    this.o.log.info({ rule_set: `${name}@${version}`, selector, devices: devices.length, actor: o.actor }, 'rule set deployed');
    return { rule_set: { name, version, sha256: doc.sha256 }, devices };
  }

  /** Tell the devices the selector picks to drop the fleet's rule set and run their config's rules again (`rule_set: null`). */
  async withdraw(selector: Record<string, string>, o: { actor: string }): Promise<{ devices: string[] }> {
    const devices = await this.send(null, selector, 'withdrawal', o.actor);
    this.o.repo.recordDeployment(selector, null, null, o.actor, this.o.clock.now());
    this.o.audit.record({ actor: o.actor, action: 'rules.withdraw', target: Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(','), details: { selector, devices: devices.length } });
    this.o.log.info({ selector, devices: devices.length, actor: o.actor }, 'rule set withdrawn');
    return { devices };
  }

  /**
   * A device just registered with `tags`: the newest standing deployment whose selector they
   * match is sent to it (a deployment is to a selector, not to the devices it found that day).
   * Returns what was sent, or null when no deployment matches (or the match is a withdrawal).
   */
  async follow(deviceId: string, tags: Readonly<Record<string, string>>): Promise<{ name: string; version: number } | null> {
    const match = this.o.repo.deployments().find((d) => Object.entries(d.selector).every(([k, v]) => tags[k] === v));
    if (!match || match.name === null || match.version === null) return null;
    const doc = this.get(match.name, match.version);
    await this.deliverTo([deviceId], doc, `${match.name}@${match.version}`, 'fleet');
    this.o.log.info({ rule_set: `${match.name}@${match.version}`, device_id: deviceId, selector: match.selector }, 'rule set sent to a new device its deployment selects');
    this.o.audit.record({ actor: 'fleet', action: 'rules.deploy', target: `${match.name}@${match.version}`, details: { selector: match.selector, devices: 1, device_id: deviceId, reason: 'device registered' } });
    return { name: match.name, version: match.version };
  }

  /** Record a new revision per selected device, then publish: a failed delivery is retried by sending again (devices keep what they run meanwhile). */
  private async send(doc: SignedRuleSet | null, selector: Record<string, string>, what: string, actor: string): Promise<string[]> {
    const devices = this.o.devices.list({ tags: selector }).map((d) => d.id);
    // None yet (a site not provisioned): the deployment still stands for devices registered later.
    if (devices.length === 0) return [];
    return this.deliverTo(devices, doc, what, actor);
  }

  private async deliverTo(devices: string[], doc: SignedRuleSet | null, what: string, actor: string): Promise<string[]> {
    const delivery = this.o.delivery();
    if (!delivery) throw new FleetError('DELIVERY_FAILED', 'no rule-set delivery channel is running (the broker client is not up)');
    const now = this.o.clock.now();
    const revisions = this.o.repo.assign(devices, doc?.name ?? null, doc?.version ?? null, actor, now);
    const issued = new Date(now).toISOString();
    try {
      await delivery.deliver(revisions.map((r) => ({ type: 'rule_set', v: 1, device_id: r.device_id, revision: r.revision, issued_at: issued, rule_set: doc })));
    } catch (err) {
      this.o.log.error({ rule_set: what, devices: devices.length, reason: (err as Error).message }, 'rule set not delivered');
      throw new FleetError('DELIVERY_FAILED', `rule set ${what} could not be delivered: ${(err as Error).message}`, { cause: err });
    }
    return devices;
  }
}
