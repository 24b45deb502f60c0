import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { AwsCommandName, AwsCommands, AwsExecutor } from '../../../fleet/adapters/aws/calls.js';
import { GreengrassBackend } from '../../../fleet/adapters/aws/greengrass-backend.js';
import { emptyLedger, memoryLedgerStore } from '../../../fleet/adapters/aws/ledger.js';
import type { GroupRecord, Ledger, LedgerStore } from '../../../fleet/adapters/aws/ledger.js';
import { sqliteLedgerStore } from '../../../fleet/adapters/sqlite/aws-ledger-repo.js';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import type { FleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteUsersRepo } from '../../../fleet/adapters/sqlite/users-repo.js';
import { tempDir } from '../../helpers/packages.js';
import { awsConfig, groupArn } from './fixtures.js';

const group = (name: string, o: Partial<GroupRecord> = {}): GroupRecord => ({
  name,
  arn: groupArn(name),
  rollout_id: 'ro_1',
  label: name.split('-').at(-1) ?? 'canary',
  kind: 'stage',
  model: { name: 'digits', version: '2.0.0' },
  revision: 3,
  deployment_id: `dep-${name}`,
  iot_job_id: `job-${name}`,
  lifecycle: 'active',
  canceled_by_fleet: false,
  abort_reported: false,
  members: ['gw-a'],
  ...o,
});

function sample(): Ledger {
  const l = emptyLedger();
  l.last_revision = 1_700_000_000_003;
  // Not in name order: the store keeps the order groups were made in.
  l.groups['edgeloop-ro_1-wave-1'] = group('edgeloop-ro_1-wave-1', { members: ['gw-b', 'gw-c'] });
  l.groups['edgeloop-ro_1-canary'] = group('edgeloop-ro_1-canary');
  l.member_of = { 'gw-a': 'edgeloop-ro_1-canary', 'gw-b': 'edgeloop-ro_1-wave-1', 'gw-c': 'edgeloop-ro_1-wave-1' };
  l.device_revision = { 'gw-a': 3, 'gw-b': 3, 'gw-c': 3, 'gw-old': 1 };
  return l;
}

/** The LedgerStore contract, for every store (conventions rule 3). */
function ledgerStoreContract(name: string, open: () => { store: LedgerStore; reopen(): LedgerStore; close(): void }): void {
  describe(`${name} ledger store`, () => {
    it('starts empty, and loads what was saved (groups in the order they were made)', () => {
      const s = open();
      try {
        expect(s.store.load()).toEqual(emptyLedger());
        const l = sample();
        s.store.save(l);
        const again = s.reopen().load();
        expect(again).toEqual(l);
        expect(Object.keys(again.groups)).toEqual(['edgeloop-ro_1-wave-1', 'edgeloop-ro_1-canary']);
        // Later saves carry changes and removals.
        l.groups['edgeloop-ro_1-canary']!.lifecycle = 'canceled';
        delete l.member_of['gw-a'];
        delete l.device_revision['gw-old'];
        l.last_revision += 1;
        s.store.save(l);
        expect(s.reopen().load()).toEqual(l);
      } finally {
        s.close();
      }
    });

    it('atomically: nothing of a block that throws is kept, and later saves still land', () => {
      const s = open();
      try {
        const l = sample();
        s.store.save(l);
        const changed = structuredClone(l);
        changed.groups['edgeloop-ro_1-canary']!.abort_reported = true;
        expect(() =>
          s.store.atomically(() => {
            s.store.save(changed);
            throw new Error('the report failed');
          }),
        ).toThrow('the report failed');
        expect(s.reopen().load()).toEqual(l);
        expect(s.store.atomically(() => (s.store.save(changed), 'done'))).toBe('done');
        expect(s.reopen().load()).toEqual(changed);
      } finally {
        s.close();
      }
    });
  });
}

ledgerStoreContract('memory', () => {
  const store = memoryLedgerStore();
  return { store, reopen: () => memoryLedgerStore(store.current), close: () => undefined };
});

ledgerStoreContract('sqlite (fleet database)', () => {
  const t = tempDir('edgeloop-ledger-');
  const path = join(t.dir, 'fleet.db');
  const db = openFleetDb({ path });
  const opened: FleetDb[] = [db];
  return {
    store: sqliteLedgerStore(db),
    // Another connection: what a restarted fleet reads.
    reopen: () => {
      const other = openFleetDb({ path });
      opened.push(other);
      return sqliteLedgerStore(other);
    },
    close: () => {
      for (const d of opened) d.close();
      t.cleanup();
    },
  };
});

describe('the AWS ledger in the fleet database', () => {
  it('imports the JSON file of an earlier fleet once, and renames it', () => {
    const t = tempDir('edgeloop-ledger-import-');
    const db = openFleetDb({ path: join(t.dir, 'fleet.db') });
    try {
      const file = join(t.dir, 'aws-ledger.json');
      writeFileSync(file, `${JSON.stringify(sample())}\n`);
      expect(sqliteLedgerStore(db, { importFrom: file }).load()).toEqual(sample());
      expect(existsSync(file)).toBe(false);
      expect(existsSync(`${file}.imported`)).toBe(true);
      // A file appearing again later is not imported over the database.
      writeFileSync(file, `${JSON.stringify(emptyLedger())}\n`);
      expect(sqliteLedgerStore(db, { importFrom: file }).load()).toEqual(sample());
    } finally {
      db.close();
      t.cleanup();
    }
  });

  it('an IoT Jobs abort is marked reported in the same transaction as the rollout step it makes (a failed report keeps neither)', async () => {
    const t = tempDir('edgeloop-ledger-abort-');
    const db = openFleetDb({ path: join(t.dir, 'fleet.db') });
    try {
      const ledger = sqliteLedgerStore(db);
      const l = emptyLedger();
      l.groups['edgeloop-ro_1-canary'] = group('edgeloop-ro_1-canary');
      ledger.save(l);
      const outputs: { [K in AwsCommandName]?: AwsCommands[K]['output'] } = {
        GetDeployment: { deploymentStatus: 'ACTIVE', $metadata: {} },
        DescribeJob: { job: { status: 'CANCELED', reasonCode: 'FAILURE_THRESHOLD_EXCEEDED' }, $metadata: {} },
        ListJobExecutionsForJob: { executionSummaries: [], $metadata: {} },
      };
      const aws: AwsExecutor = { send: (command) => Promise.resolve(outputs[command] as never) };
      const backend = new GreengrassBackend({ cfg: awsConfig(), aws, ledger, rollout: () => null, locate: () => Promise.reject(new Error('unused')), clock: { now: () => 1000 }, log: pino({ level: 'silent' }) });
      // The rollout step the report makes, standing in: a write to the same database.
      const steps = sqliteUsersRepo(db);
      let fail = true;
      const sink = (): void => {
        steps.put({ name: 'paused-by-iot-jobs', role: 'viewer', token_hash: 'x', created_at: 1, created_by: null, expires_at: null, revoked_at: null });
        if (fail) throw new Error('the manager refused');
      };
      await expect(backend.poll(sink)).rejects.toThrow('the manager refused');
      expect(steps.count()).toBe(0);
      expect(sqliteLedgerStore(db).load().groups['edgeloop-ro_1-canary']?.abort_reported).toBe(false);
      expect(backend.ledger().groups['edgeloop-ro_1-canary']?.abort_reported).toBe(false);
      fail = false;
      expect(await backend.poll(sink)).toBe(1);
      expect(steps.count()).toBe(1);
      expect(sqliteLedgerStore(db).load().groups['edgeloop-ro_1-canary']?.abort_reported).toBe(true);
      // Reported once.
      expect(await backend.poll(sink)).toBe(0);
    } finally {
      db.close();
      t.cleanup();
    }
  });
});
