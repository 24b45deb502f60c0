import { z } from 'zod';

type JsonSchema = { type?: string | string[]; anyOf?: JsonSchema[]; oneOf?: JsonSchema[]; items?: JsonSchema; properties?: Record<string, JsonSchema> };

/** The JSON types a property accepts: `type` itself or the types of its `anyOf`/`oneOf` branches. */
function typesOf(s: JsonSchema | undefined): Set<string> {
  const out = new Set<string>();
  if (!s) return out;
  if (typeof s.type === 'string') out.add(s.type);
  if (Array.isArray(s.type)) for (const t of s.type) out.add(t);
  for (const b of [...(s.anyOf ?? []), ...(s.oneOf ?? [])]) for (const t of typesOf(b)) out.add(t);
  return out;
}

const NUMERIC = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function scalar(value: string, types: Set<string>): unknown {
  if (types.has('boolean') && (value === 'true' || value === 'false')) return value === 'true';
  if ((types.has('number') || types.has('integer')) && NUMERIC.test(value)) return Number(value);
  return value;
}

/**
 * Turns query strings into what an object schema expects, driven by the schema itself:
 * a property typed number (or number|string, like the sample filter's times) gets a number
 * when the text is numeric, a boolean gets `true`/`false`, an array gets every value of a
 * repeated key. Everything else stays a string, so `label=7` stays the label "7". Empty
 * values are dropped (HTML forms send empty fields). The schema then validates as usual:
 * one schema for the library, the API and its documentation, no restated query types.
 */
export function queryCoercer(schema: z.ZodType): (params: URLSearchParams) => Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const props = json.properties ?? {};
  return (params) => {
    const out: Record<string, unknown> = {};
    for (const key of new Set(params.keys())) {
      const values = params.getAll(key).filter((v) => v !== '');
      if (values.length === 0) continue;
      const prop = props[key];
      const types = typesOf(prop);
      if (types.has('array')) out[key] = values.map((v) => scalar(v, typesOf(prop?.items)));
      else if (values.length === 1) out[key] = scalar(values[0] as string, types);
      // A repeated key the schema does not take as a list: let validation say so.
      else out[key] = values.map((v) => scalar(v, types));
    }
    return out;
  };
}
