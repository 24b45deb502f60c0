import { numberFlag, parseFlags, type Io } from '../../../shared/cli.js';
import { FleetError } from '../../errors.js';

export const SAMPLE_MODEL_HELP = `Usage: edgeloop sample-model --out DIR [--epochs N] [--json]

Trains a small digit classifier (the local trainer's CNN on 3,000 real mnist digits, about
20 s on two cores) and writes what you bring to 'edgeloop pack' for a first run:

  DIR/model.onnx           the classifier (28x28 grey input, 10 classes, probabilities out)
  DIR/labels.txt           its labels, 0..9
  DIR/golden/<digit>.png   golden inputs: one frame per digit the model is sure of
  DIR/frames/NN-<digit>.png  held-out digits it never saw, to send to a device

and prints the pack command. The model reads white ink on black, like mnist; camera frames
are dark ink on light paper, so its package needs --invert (the printed command has it).

  --out DIR      output directory (required)
  --epochs N     training epochs (default 4)
  --json         print the result as JSON`;

export async function sampleModelCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(argv, { out: { type: 'string', short: 'o' }, epochs: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, SAMPLE_MODEL_HELP);
  if (values.help) {
    io.out(SAMPLE_MODEL_HELP);
    return 0;
  }
  if (!values.out) throw new FleetError('USAGE', `--out DIR is required\n\n${SAMPLE_MODEL_HELP}`);
  const epochs = numberFlag(values.epochs, 'epochs');
  if (epochs !== undefined && !(Number.isInteger(epochs) && epochs > 0)) throw new FleetError('USAGE', `--epochs must be a positive integer, got ${values.epochs}`);
  // Loaded here: the trainer pulls in ONNX Runtime, sharp and the mnist digits.
  const { writeSampleModel } = await import('../../adapters/trainers/sample-model.js');
  const res = await writeSampleModel({ outDir: values.out, ...(epochs ? { epochs } : {}), onProgress: (l) => io.err(l) });
  if (values.json) {
    io.out(JSON.stringify({ dir: res.dir, model: res.model, labels: res.labels, golden: res.golden, frames: res.frames, holdout_accuracy: res.holdoutAccuracy, pack_args: res.packArgs }));
    return 0;
  }
  io.out(`wrote ${res.model}, ${res.labels}, ${res.golden.length} golden inputs and ${res.frames.length} held-out frames`);
  io.out(`accuracy on 500 held-out digits: ${(res.holdoutAccuracy * 100).toFixed(1)}%`);
  io.out('package it with:');
  io.out(`  edgeloop pack ${res.packArgs.join(' ')} --out pkg --name digits --version 1.0.0`);
  return 0;
}
