import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sharedError } from '../../../shared/errors.js';
import { FleetError } from '../../errors.js';
import type { PackageStaging, StagedPackage, UploadLimits } from '../../app/models/staging.js';
import { DEFAULT_UPLOAD_LIMITS } from '../../app/models/staging.js';
import { extractTar, type Refusals } from '../aws/tar.js';

const UPLOAD: Refusals = {
  label: 'the uploaded package',
  invalid: (message, cause) => new FleetError('UPLOAD_INVALID', message, cause === undefined ? {} : { cause }),
  tooLarge: (message) => sharedError('PAYLOAD_TOO_LARGE', message),
};

/**
 * Uploaded packages unpacked under `dir` (DATA/uploads), one fresh `mkdtemp` directory each:
 * on the fleet's own disk, beside the artifacts, so unpacking never fills another volume and the
 * directory cannot be named by a caller. What a crash leaves behind is removed at the next start.
 */
export async function fsPackageStaging(o: { dir: string; limits?: Partial<UploadLimits> }): Promise<PackageStaging> {
  const limits = { ...DEFAULT_UPLOAD_LIMITS, ...o.limits };
  // Leftovers of uploads a crash interrupted: nothing refers to them.
  await rm(o.dir, { recursive: true, force: true });
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  return {
    async unpack(archive): Promise<StagedPackage> {
      const dir = await mkdtemp(join(o.dir, 'pkg-'));
      const discard = (): Promise<void> => rm(dir, { recursive: true, force: true });
      try {
        const files = await extractTar(archive, dir, { maxBytes: limits.maxBytes, maxFileBytes: limits.maxFileBytes, maxEntries: limits.maxEntries, refusals: UPLOAD });
        return { dir, files, discard };
      } catch (err) {
        await discard();
        throw err;
      }
    },
  };
}
