import { describe, expect, it } from 'vitest';
import { wireJsonSchemas } from '../../shared/json-schema.js';
import { newId, seededRandom, sha256Hex } from '../../shared/ids.js';
import { desiredState, inferRequest, modelManifest, sampleMeta, telemetry } from '../../shared/schemas/index.js';
import { canonicalJson, generateSigningKeyPair, signManifest, verifyManifestSignature } from '../../shared/signing.js';
import { deviceIdFromTopic, topics } from '../../shared/topics.js';
import { parseJsonWith } from '../../shared/validate.js';

const manifest = {
  schema: 'edgeloop.model-manifest',
  v: 1,
  name: 'digits',
  version: '1.2.0',
  created_at: '2026-11-01T00:00:00.000Z',
  model_file: 'model.onnx',
  files: [{ path: 'model.onnx', sha256: 'a'.repeat(64), bytes: 10, role: 'model' }],
  inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }],
  outputs: [{ name: 'probabilities', dtype: 'float32', shape: ['batch', 10] }],
  preprocessing: { kind: 'image', width: 28, height: 28, color: 'grayscale' },
  labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
};

describe('schemas', () => {
  it('applies manifest defaults and keeps every message versioned', () => {
    const m = modelManifest.parse(manifest);
    expect(m.preprocessing).toMatchObject({ layout: 'NCHW', dtype: 'float32', fit: 'fill' });
    expect(m.outlier.min_confidence).toBeGreaterThan(0);
    expect(m.postprocessing.top_k).toBe(5);
    for (const [name, schema] of Object.entries(wireJsonSchemas()).filter(([n]) => n !== 'SampleMeta')) {
      const text = JSON.stringify(schema);
      expect(text, name).toMatch(/"(v|schema)"/);
    }
  });

  it('names every bad key of an invalid message', () => {
    const bad = { ...manifest, version: 'one', files: [{ path: '../etc/passwd', sha256: 'xyz', bytes: -1 }] };
    const r = modelManifest.safeParse(bad);
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['version', 'files.0.path', 'files.0.sha256', 'files.0.bytes']));
  });

  it('rejects an inference request with both or neither input', () => {
    expect(() => parseJsonWith(inferRequest, '{"image_b64":"AA==","tensor":[1]}', 'INPUT_INVALID', 'request')).toThrow(/exactly one/);
    expect(() => parseJsonWith(inferRequest, '{}', 'INPUT_INVALID', 'request')).toThrow(/exactly one/);
    expect(() => parseJsonWith(inferRequest, '{not json', 'INPUT_INVALID', 'request')).toThrow(/not valid JSON/);
    expect(parseJsonWith(inferRequest, '{"tensor":[1,2]}', 'INPUT_INVALID', 'request')).toMatchObject({ v: 1, tensor: [1, 2] });
  });

  it('rejects unknown schema versions', () => {
    const t = { type: 'telemetry', v: 2 };
    expect(telemetry.safeParse(t).success).toBe(false);
    expect(desiredState.safeParse({ type: 'desired_state', v: 1, device_id: 'a/b', revision: 1, issued_at: '2026-01-01T00:00:00Z', active: null }).success).toBe(false);
    expect(sampleMeta.safeParse({}).success).toBe(false);
  });
});

describe('signing', () => {
  const keys = generateSigningKeyPair();

  it('verifies a signed manifest whatever the key order', () => {
    const signed = signManifest(manifest, keys.privateKeyPem);
    const reordered = Object.fromEntries(Object.entries(signed).reverse());
    expect(() => verifyManifestSignature(reordered, keys.publicKeyPem)).not.toThrow();
  });

  it('detects a changed manifest, a foreign key and a missing signature', () => {
    const signed = signManifest(manifest, keys.privateKeyPem);
    expect(() => verifyManifestSignature({ ...signed, version: '9.9.9' }, keys.publicKeyPem)).toThrow(expect.objectContaining({ code: 'MODEL_SIGNATURE_INVALID' }));
    const other = generateSigningKeyPair();
    expect(() => verifyManifestSignature(signed, other.publicKeyPem)).toThrow(/signed by key/);
    expect(() => verifyManifestSignature(manifest, keys.publicKeyPem)).toThrow(/not signed/);
  });

  it('canonical JSON sorts keys and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: [1, { d: undefined, c: 'x' }] })).toBe('{"a":[1,{"c":"x"}],"b":1}');
  });
});

describe('ids and topics', () => {
  it('makes sortable, unique ids from injected time and randomness', () => {
    const rand = seededRandom(1);
    const a = newId('smp', { now: () => 1000 }, rand);
    const b = newId('smp', { now: () => 2000 }, rand);
    expect(a < b).toBe(true);
    expect(a).toMatch(/^smp_[0-9A-Z]{26}$/);
    const set = new Set(Array.from({ length: 1000 }, () => newId('x', { now: () => 5 }, rand)));
    expect(set.size).toBe(1000);
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('round-trips device ids through topics', () => {
    expect(deviceIdFromTopic(topics.samples('cam-7'))).toBe('cam-7');
    expect(deviceIdFromTopic('other/topic')).toBeNull();
  });
});
