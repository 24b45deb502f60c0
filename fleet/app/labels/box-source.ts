import { imageSize } from '../../../shared/inference/image-size.js';
import type { FrameSize } from '../../core/labels/boxes.js';
import type { ArtifactStore } from '../artifacts.js';
import type { ModelRegistry } from '../models/registry.js';
import type { BoxLabelSource } from './labels.js';

/** Bytes read for an image header: a JPEG's size frame follows its EXIF block, which fits in 64 KiB. */
const HEADER_BYTES = 64 * 1024;

/** An image's size from the first bytes of its artifact (the whole artifact only when the header is not in them). */
async function storedImageSize(artifacts: ArtifactStore, sha256: string): Promise<FrameSize | null> {
  const chunks: Buffer[] = [];
  for await (const c of await artifacts.createReadStream(sha256, { start: 0, end: HEADER_BYTES - 1 })) chunks.push(c as Buffer);
  const head = Buffer.concat(chunks);
  return imageSize(head) ?? (head.length >= HEADER_BYTES ? imageSize(await artifacts.get(sha256)) : null);
}

/**
 * Box labels checked against what the fleet holds: the image size from the stored blob's
 * header (the pixels the device's boxes are in), the task and classes from the registered
 * manifest of the sample's model version.
 */
export function boxLabelSource(artifacts: ArtifactStore, registry: Pick<ModelRegistry, 'find' | 'manifest'>): BoxLabelSource {
  return {
    imageSize: (sha256) => storedImageSize(artifacts, sha256),
    model: async (ref) => {
      if (!registry.find(ref.name, ref.version)) return null;
      const m = await registry.manifest(ref.name, ref.version);
      return { task: m.task, labels: m.labels };
    },
  };
}
