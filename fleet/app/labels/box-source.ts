import { imageSize } from '../../../shared/inference/image-size.js';
import type { ArtifactStore } from '../artifacts.js';
import type { ModelRegistry } from '../models/registry.js';
import type { BoxLabelSource } from './labels.js';

/**
 * Box labels checked against what the fleet holds: the image size from the stored blob's
 * header (the pixels the device's boxes are in), the task and classes from the registered
 * manifest of the sample's model version.
 */
export function boxLabelSource(artifacts: ArtifactStore, registry: Pick<ModelRegistry, 'find' | 'manifest'>): BoxLabelSource {
  return {
    imageSize: async (sha256) => imageSize(await artifacts.get(sha256)),
    model: async (ref) => {
      if (!registry.find(ref.name, ref.version)) return null;
      const m = await registry.manifest(ref.name, ref.version);
      return { task: m.task, labels: m.labels };
    },
  };
}
