/**
 * What the Greengrass backend knows about the AWS side: which thing groups it made, which
 * deployment each carries, which group each device is in, and the last revision it issued.
 * Persisted (in the fleet database: adapters/sqlite/aws-ledger-repo.ts) before each call that
 * depends on it, so a restart neither redeploys a group nor loses a membership.
 */
import { z } from 'zod';
import { modelRef } from '../../../shared/schemas/common.js';

export const groupRecord = z.object({
  name: z.string(),
  arn: z.string(),
  rollout_id: z.string(),
  label: z.string(),
  kind: z.enum(['stage', 'revert']),
  /** The model the group's reports are about: the candidate (stage/shadow), last-known-good (revert). */
  model: modelRef,
  /** Revision of the group's latest deployment (0 = none yet). */
  revision: z.number().int().nonnegative(),
  deployment_id: z.string().nullable(),
  iot_job_id: z.string().nullable(),
  lifecycle: z.enum(['none', 'active', 'completed', 'canceled', 'failed', 'superseded']),
  canceled_by_fleet: z.boolean(),
  /** IoT Jobs cancelled the job by its abort criteria, and the rollout was told (once). */
  abort_reported: z.boolean(),
  members: z.array(z.string()),
});
export type GroupRecord = z.infer<typeof groupRecord>;

export const ledger = z.object({
  v: z.literal(1),
  last_revision: z.number().int().nonnegative(),
  groups: z.record(z.string(), groupRecord),
  /** The one edgeloop group each device is in (a thing belongs to a bounded number of groups). */
  member_of: z.record(z.string(), z.string()),
  /** Revision of the deployment each device was last given. */
  device_revision: z.record(z.string(), z.number().int().nonnegative()),
});
export type Ledger = z.infer<typeof ledger>;

export const emptyLedger = (): Ledger => ({ v: 1, last_revision: 0, groups: {}, member_of: {}, device_revision: {} });

export interface LedgerStore {
  load(): Ledger;
  save(l: Ledger): void;
  /**
   * Run `fn` as one transaction with whatever it writes to the fleet database: the ledger's
   * saves and the rollout step a reported status makes (the manager's save), so neither commits
   * without the other. Throws what `fn` throws, with nothing of it written.
   */
  atomically<T>(fn: () => T): T;
}

/** A ledger in memory (tests, dry runs); `atomically` puts back what `fn` saved when it throws. */
export function memoryLedgerStore(initial: Ledger = emptyLedger()): LedgerStore & { current: Ledger } {
  const s = {
    current: structuredClone(initial),
    load: () => structuredClone(s.current),
    save: (l: Ledger) => void (s.current = structuredClone(l)),
    atomically: <T>(fn: () => T): T => {
      const before = s.current;
      try {
        return fn();
      } catch (err) {
        s.current = before;
        throw err;
      }
    },
  };
  return s;
}
