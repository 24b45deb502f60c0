/** The JSON body parser's worker thread (json-body.ts): parse, validate, answer with transferable arrays. */
import { parentPort } from 'node:worker_threads';
import { parseToWire } from './json-body.js';

const port = parentPort;
if (!port) throw new Error('the JSON body parser must run in a worker thread');

port.on('message', (m: { id: number; body: Uint8Array }) => {
  const wire = parseToWire(m.body);
  const transfer: ArrayBuffer[] = [];
  if (wire.ok && wire.values) transfer.push(wire.values.buffer as ArrayBuffer);
  if (wire.ok && wire.image) {
    // Buffer.from(base64) may sit in the shared pool: give the worker's answer its own buffer.
    wire.image = new Uint8Array(wire.image);
    transfer.push(wire.image.buffer as ArrayBuffer);
  }
  port.postMessage({ id: m.id, wire }, transfer);
});
