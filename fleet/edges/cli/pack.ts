import { readFile } from 'node:fs/promises';
import { numberFlag, parseFlags, type Io } from '../../../shared/cli.js';
import { FleetError } from '../../errors.js';
import { packModel, readLabels } from '../../adapters/fs/pack.js';

export const PACK_HELP = `Usage: edgeloop pack MODEL.onnx --labels FILE --out DIR [options]

Builds a model package (manifest.json + files, sha256 of each, optional ed25519 signature)
from any classification ONNX file (PyTorch, Keras, scikit-learn exports...).

  --labels FILE         class labels, one per line (or a JSON array)             (required)
  --out DIR             output directory                                          (required)
  --name NAME           model name (default: the file name)
  --version X.Y.Z       semantic version (default 0.1.0)
  --sign-key FILE       ed25519 private key (PEM) to sign with (edgeloop keygen makes one)
  --width N --height N  resize target (default: from the ONNX input)
  --color rgb|grayscale (default: from the input's channel count)
  --layout NCHW|NHWC    (default: guessed from the input shape)
  --dtype float32|uint8 (default: the input's type)
  --fit fill|cover|contain|inside|outside  (default fill)
  --scale N             pixel multiplier (default 1/255 for float32, 1 for uint8)
  --mean a,b,c --std a,b,c  per-channel normalisation after scaling (default 0 / 1)
  --invert              invert intensities (white-on-black models such as MNIST)
  --tensor              tabular/sensor model: JSON number input, no image preprocessing
  --softmax             the model outputs logits; apply softmax on the device
  --top-k N             top-k entries in results (default 5)
  --golden FILE[=LABEL] golden image for the on-device smoke test (repeatable): the model
                        must predict LABEL for it here, or pack refuses (FLEET_GOLDEN_MISMATCH:
                        usually a preprocessing flag such as --invert); without =LABEL the
                        model's prediction now is recorded. Without any golden input pack
                        warns and 'models push' refuses the package unless --force
  --json                print the manifest as JSON`;

const list = (v: string | undefined): number[] | undefined => (v === undefined ? undefined : v.split(',').map((x) => Number(x)));

export async function packCmd(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(
    argv,
    {
      labels: { type: 'string' },
      out: { type: 'string', short: 'o' },
      name: { type: 'string' },
      version: { type: 'string' },
      'sign-key': { type: 'string' },
      width: { type: 'string' },
      height: { type: 'string' },
      color: { type: 'string' },
      layout: { type: 'string' },
      dtype: { type: 'string' },
      fit: { type: 'string' },
      scale: { type: 'string' },
      mean: { type: 'string' },
      std: { type: 'string' },
      invert: { type: 'boolean' },
      tensor: { type: 'boolean' },
      softmax: { type: 'boolean' },
      'top-k': { type: 'string' },
      golden: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    PACK_HELP,
  );
  if (values.help) {
    io.out(PACK_HELP);
    return 0;
  }
  const onnx = positionals[0];
  if (!onnx || !values.labels || !values.out) throw new FleetError('USAGE', `MODEL.onnx, --labels and --out are required\n\n${PACK_HELP}`);
  const pick = <T extends string>(v: string | undefined, allowed: readonly T[], flag: string): T | undefined => {
    if (v === undefined) return undefined;
    if (!allowed.includes(v as T)) throw new FleetError('USAGE', `--${flag} must be one of ${allowed.join(', ')}`);
    return v as T;
  };
  const image = Object.fromEntries(
    Object.entries({
      width: numberFlag(values.width, 'width'),
      height: numberFlag(values.height, 'height'),
      color: pick(values.color, ['rgb', 'grayscale'] as const, 'color'),
      layout: pick(values.layout, ['NCHW', 'NHWC'] as const, 'layout'),
      dtype: pick(values.dtype, ['float32', 'uint8'] as const, 'dtype'),
      fit: pick(values.fit, ['fill', 'cover', 'contain', 'inside', 'outside'] as const, 'fit'),
      scale: numberFlag(values.scale, 'scale'),
      mean: list(values.mean),
      std: list(values.std),
      invert: values.invert,
    }).filter(([, v]) => v !== undefined),
  );
  const golden = (values.golden ?? []).map((g) => {
    const at = g.lastIndexOf('=');
    return at > 0 ? { file: g.slice(0, at), label: g.slice(at + 1) } : { file: g };
  });
  const { dir, manifest, warnings } = await packModel({
    onnxPath: onnx,
    outDir: values.out,
    labels: await readLabels(values.labels),
    ...(values.name ? { name: values.name } : {}),
    ...(values.version ? { version: values.version } : {}),
    image,
    tensorInput: values.tensor ?? false,
    softmax: values.softmax ?? false,
    ...(values['top-k'] ? { topK: numberFlag(values['top-k'], 'top-k')! } : {}),
    golden,
    ...(values['sign-key'] ? { signKeyPem: await readFile(values['sign-key'], 'utf8') } : {}),
  });
  for (const w of warnings) io.err(`warning: ${w}`);
  if (values.json) io.out(JSON.stringify(manifest));
  else {
    const p = manifest.preprocessing;
    io.out(`packed ${manifest.name}@${manifest.version} -> ${dir}`);
    io.out(`  input ${manifest.inputs[0]!.name} [${manifest.inputs[0]!.shape.join(',')}] ${p.kind === 'image' ? `${p.width}x${p.height} ${p.color} ${p.layout} ${p.dtype}` : 'tensor'}`);
    io.out(`  ${manifest.labels.length} labels, ${manifest.golden.length} golden inputs, ${manifest.signature ? `signed (key ${manifest.signature.key_id.slice(0, 12)})` : 'UNSIGNED'}`);
  }
  return 0;
}
