import { existsSync, readFileSync, renameSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { FleetDb } from './db.js';
import { guarded, storageError } from './guard.js';
import { emptyLedger, groupRecord, ledger as ledgerSchema } from '../aws/ledger.js';
import type { GroupRecord, Ledger, LedgerStore } from '../aws/ledger.js';
import { FleetError } from '../../errors.js';

/** What the table holds for one device: its group and its last revision. */
type DeviceEntry = [group: string | null, revision: number | null];

/** The tables' content as last written, serialised per row. */
interface Saved {
  last: number | null;
  groups: Map<string, string>;
  devices: Map<string, string>;
}

/**
 * The Greengrass backend's ledger in the fleet database (`aws_ledger`, `aws_groups`,
 * `aws_devices`, migration 5). `save` writes only the groups and devices that changed since the
 * last save (the backend saves after every AWS call; a wave touches a few rows, not the fleet),
 * in one transaction. `atomically` shares one transaction between the ledger and the rollout
 * step a status report makes.
 *
 * `importFrom`: the JSON file earlier fleets kept the ledger in. When the tables are empty and
 * the file exists, it is imported once and renamed to `<file>.imported`.
 */
export function sqliteLedgerStore(db: FleetDb, o: { importFrom?: string } = {}): LedgerStore {
  const s = db.sqlite;
  const lastRevision = s.prepare<[], number>('SELECT last_revision FROM aws_ledger WHERE id = 1').pluck();
  const setLastRevision = s.prepare<[number]>('INSERT INTO aws_ledger (id, last_revision) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_revision = excluded.last_revision');
  const groups = s.prepare<[], { name: string; record: string }>('SELECT name, record FROM aws_groups ORDER BY rowid');
  const putGroup = s.prepare<[string, string, string]>('INSERT INTO aws_groups (name, rollout_id, record) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET record = excluded.record');
  const deleteGroup = s.prepare<[string]>('DELETE FROM aws_groups WHERE name = ?');
  const devices = s.prepare<[], { device_id: string; group_name: string | null; revision: number | null }>('SELECT device_id, group_name, revision FROM aws_devices');
  const putDevice = s.prepare<[string, string | null, number | null]>(
    'INSERT INTO aws_devices (device_id, group_name, revision) VALUES (?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET group_name = excluded.group_name, revision = excluded.revision',
  );
  const deleteDevice = s.prepare<[string]>('DELETE FROM aws_devices WHERE device_id = ?');
  const clear = [s.prepare('DELETE FROM aws_groups'), s.prepare('DELETE FROM aws_devices')];

  // What the tables hold, as last written: a save writes the rows that differ. Null when unknown
  // (a transaction around a save rolled back): the next save then rewrites every row.
  let saved: Saved | null = null;

  const read = (): Ledger => {
    const l = emptyLedger();
    const last = lastRevision.get();
    const next: Saved = { last: last ?? null, groups: new Map(), devices: new Map() };
    if (last !== undefined) l.last_revision = last;
    for (const g of groups.all()) {
      l.groups[g.name] = groupRecord.parse(JSON.parse(g.record)) as GroupRecord;
      next.groups.set(g.name, g.record);
    }
    for (const d of devices.all()) {
      if (d.group_name !== null) l.member_of[d.device_id] = d.group_name;
      if (d.revision !== null) l.device_revision[d.device_id] = d.revision;
      next.devices.set(d.device_id, JSON.stringify([d.group_name, d.revision] satisfies DeviceEntry));
    }
    saved = next;
    return l;
  };

  const write = s.transaction((l: Ledger): Saved => {
    const before: Saved = saved ?? { last: null, groups: new Map(), devices: new Map() };
    if (!saved) for (const c of clear) c.run();
    const next: Saved = { last: l.last_revision, groups: new Map(), devices: new Map() };
    if (before.last !== l.last_revision) setLastRevision.run(l.last_revision);
    for (const [name, g] of Object.entries(l.groups)) {
      const record = JSON.stringify(g);
      next.groups.set(name, record);
      if (before.groups.get(name) !== record) putGroup.run(name, g.rollout_id, record);
    }
    for (const name of before.groups.keys()) if (!next.groups.has(name)) deleteGroup.run(name);
    for (const id of new Set([...Object.keys(l.member_of), ...Object.keys(l.device_revision)])) {
      const entry = JSON.stringify([l.member_of[id] ?? null, l.device_revision[id] ?? null] satisfies DeviceEntry);
      next.devices.set(id, entry);
      if (before.devices.get(id) !== entry) putDevice.run(id, l.member_of[id] ?? null, l.device_revision[id] ?? null);
    }
    for (const id of before.devices.keys()) if (!next.devices.has(id)) deleteDevice.run(id);
    return next;
  });

  const save = (l: Ledger): void => {
    const next = write.immediate(l);
    // Inside `atomically` this is not the commit yet; a rollback there forgets it (see below).
    saved = next;
  };

  /** The ledger of a JSON file from before migration 5, if there is one to import. */
  const legacy = (): Ledger | null => {
    const path = o.importFrom;
    if (!path || !existsSync(path)) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new FleetError('STORAGE_FAILED', `cannot read the AWS backend ledger ${path}: ${(err as Error).message}`, { cause: err });
    }
    const r = ledgerSchema.safeParse(parsed);
    if (!r.success) throw new FleetError('STORAGE_FAILED', `AWS backend ledger ${path} is invalid: ${r.error.message}`);
    return r.data;
  };

  const store = guarded('aws ledger', {
    load: () => {
      const l = read();
      if (l.last_revision > 0 || Object.keys(l.groups).length || Object.keys(l.device_revision).length || Object.keys(l.member_of).length) return l;
      const old = legacy();
      if (!old) return l;
      save(old);
      // Renamed only once the import committed: a crash before leaves the file to import again.
      renameSync(o.importFrom as string, `${o.importFrom as string}.imported`);
      return read();
    },
    save,
  });
  return {
    ...store,
    // Not guarded: what `fn` throws (the manager's errors, a bug) stays what it is; only
    // SQLite's own failures (BEGIN, COMMIT) become FLEET_STORAGE_FAILED.
    atomically: <T>(fn: () => T): T => {
      try {
        return s.transaction(fn).immediate();
      } catch (err) {
        saved = null;
        if (err instanceof Database.SqliteError) throw storageError('fleet database, aws ledger.atomically', err);
        throw err;
      }
    },
  };
}
