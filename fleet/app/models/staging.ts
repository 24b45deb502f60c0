/**
 * Where an uploaded model package is unpacked before the registry reads it: a fresh directory
 * the fleet owns (inside its data directory), so the registry never reads a path a caller
 * named. The filesystem adapter (adapters/fs/package-staging.ts) unpacks a tar stream.
 */
export interface PackageStaging {
  /**
   * Unpack `archive` into a new directory. Refuses (`FLEET_UPLOAD_INVALID`) names that leave
   * the directory, links and other non-file entries; past a size cap (the whole archive, one
   * file) `PAYLOAD_TOO_LARGE`. The directory is removed on a refusal; otherwise the caller
   * calls `discard` when done with it.
   */
  unpack(archive: AsyncIterable<Uint8Array>): Promise<StagedPackage>;
}

export interface StagedPackage {
  dir: string;
  /** Files written, relative to `dir`. */
  files: string[];
  discard(): Promise<void>;
}

/** Caps on an upload. */
export interface UploadLimits {
  /** The whole archive (tar headers included). */
  maxBytes: number;
  /** One file of the package. */
  maxFileBytes: number;
  /** Entries (files, directories, headers). */
  maxEntries: number;
}

/** Defaults: a model package of 2 GiB at most, one file 1 GiB, 1,000 entries. */
export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { maxBytes: 2 * 1024 ** 3, maxFileBytes: 1024 ** 3, maxEntries: 1000 };
