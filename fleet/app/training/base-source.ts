/**
 * The port through which base-set references (`{ source: 'mnist', offset, count }`,
 * `{ source: 'artifacts', items }`) become training examples, and the fingerprint a dataset
 * version records of what a reference resolved to. Implementations: base-sets.ts, the demo's.
 */
import { sha256Hex } from '../../../shared/ids.js';
import { canonicalJson } from '../../../shared/signing.js';
import type { BaseRef } from '../../core/labels/dataset-schema.js';
import type { TrainingExample } from './trainer.js';

/** Where base-set references resolve to examples. */
export interface BaseSetSource {
  /** The examples a reference names, in a fixed order with stable ids. Throws `FLEET_BASE_SET_INVALID`. */
  examples(ref: BaseRef): Promise<TrainingExample[]>;
}

/** Fingerprint of resolved base examples: ids, labels and byte hashes, in order. */
export function baseContentSha(examples: readonly TrainingExample[]): string {
  return sha256Hex(canonicalJson(examples.map((e) => [e.id, e.label, sha256Hex(e.bytes)])));
}
