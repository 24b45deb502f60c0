/**
 * Validates a directory a trainer wrote as a model package before the fleet accepts it: the
 * package rules every reader applies (shared/package: schema, cross-field rules, every listed
 * file's sha256 and size), the expected name, version and labels, and ONNX Runtime loading the
 * model with the inputs and outputs the manifest declares. Every problem is listed in one
 * FLEET_TRAINING_OUTPUT_INVALID error.
 */
import '../../../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import * as ort from 'onnxruntime-node';
import { directoryReader, inspectPackage, packageError } from '../../../shared/package/index.js';
import { modelRefString, type ModelManifest, type ModelRef } from '../../../shared/schemas/index.js';
import { FleetError } from '../../errors.js';

export interface PackageCheckOptions {
  /** The name@version the package must carry. */
  expect?: ModelRef;
  /** The labels the package must list, in order. */
  labels?: readonly string[];
}

/**
 * Returns the parsed manifest, or throws FLEET_TRAINING_OUTPUT_INVALID listing every problem.
 * The package rules are shared/package's, the ones the registry and the agent refuse with:
 * when they fail, `cause` is that refusal (MODEL_PACKAGE_INVALID / MODEL_HASH_MISMATCH, each
 * problem named by its rule) and `details.package_code` its code.
 */
export async function validatePackageDir(dir: string, o: PackageCheckOptions = {}): Promise<ModelManifest> {
  const r = await inspectPackage(directoryReader(dir));
  const problems = r.problems.map((p) => p.message);
  const m = r.manifest;
  if (m && o.expect && (m.name !== o.expect.name || m.version !== o.expect.version)) problems.push(`manifest names ${m.name}@${m.version}, expected ${modelRefString(o.expect)}`);
  if (m && o.labels && m.labels.join('\n') !== o.labels.join('\n')) problems.push(`labels are [${m.labels.join(', ')}], expected [${o.labels.join(', ')}]`);
  // Only bytes that matched their sha256 are loaded: anything else is already a problem above.
  if (m && r.modelBytes) {
    try {
      const session = await ort.InferenceSession.create(r.modelBytes);
      try {
        const ins = session.inputNames;
        const outs = session.outputNames;
        // The package rules compare names too (model_io_unknown), unless other problems came first.
        if (!r.problems.some((p) => p.rule === 'model_io_unknown')) {
          for (const i of m.inputs) if (!ins.includes(i.name)) problems.push(`the model has no input ${i.name} (it has ${ins.join(', ')})`);
          for (const x of m.outputs) if (!outs.includes(x.name)) problems.push(`the model has no output ${x.name} (it has ${outs.join(', ')})`);
        }
      } finally {
        await session.release();
      }
    } catch (err) {
      problems.push(`ONNX Runtime cannot load ${m.model_file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (problems.length === 0 && m) return m;
  const refusal = r.problems.length ? packageError(dir, r.problems) : undefined;
  throw new FleetError('TRAINING_OUTPUT_INVALID', `${dir} is not a valid model package: ${problems.join('; ')}`, {
    ...(refusal ? { cause: refusal } : {}),
    details: { dir, problems, ...(refusal ? { package_code: refusal.code, rules: r.problems.map((p) => p.rule) } : {}) },
  });
}
