import { z } from 'zod';
import * as s from './schemas/index.js';

/** Every wire contract as JSON Schema (draft 2020-12), generated from the zod definitions. */
export function wireJsonSchemas(): Record<string, unknown> {
  const named: Record<string, z.ZodType> = {
    ModelManifest: s.modelManifest,
    InferRequest: s.inferRequest,
    InferResult: s.inferResult,
    SampleMeta: s.sampleMeta,
    SampleMessage: s.sampleMessage,
    SampleAck: s.sampleAck,
    Telemetry: s.telemetry,
    DeviceStatus: s.deviceStatus,
    DesiredState: s.desiredState,
  };
  const out: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(named)) out[name] = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  return out;
}
