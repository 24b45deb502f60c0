import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { AgentError, AgentErrors, type AgentWireCode } from '../../agent/errors.js';
import { ClientErrors, exitCodeForCode } from '../../fleet/edges/client/errors.js';
import { FleetError, FleetErrors, type FleetWireCode } from '../../fleet/errors.js';
import { dispatch } from '../../shared/cli.js';
import { EdgeloopError, ExitCode, SharedErrors, entriesByCode, sharedError, type CatalogueEntry } from '../../shared/errors.js';
import { parseJsonWith, parseWith } from '../../shared/validate.js';

const codesAndStatus = (c: Readonly<Record<string, CatalogueEntry>>): Record<string, string> => Object.fromEntries(Object.entries(c).map(([k, e]) => [k, `${e.code}:${e.status}`]));

describe('the error catalogue', () => {
  // The codes and statuses every catalogue sent before it was typed: devices, scripts and tests
  // match on them, so a change here is a wire change.
  it('keeps every wire code and HTTP status', () => {
    expect(codesAndStatus(AgentErrors)).toMatchObject({
      CONFIG_INVALID: 'AGENT_CONFIG_INVALID:500', INPUT_INVALID: 'INPUT_INVALID:400', IMAGE_DECODE_FAILED: 'IMAGE_DECODE_FAILED:422', TENSOR_SHAPE_MISMATCH: 'TENSOR_SHAPE_MISMATCH:422',
      UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE:415', PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE:413', MODEL_NOT_LOADED: 'AGENT_MODEL_NOT_LOADED:503', MODEL_PACKAGE_INVALID: 'MODEL_PACKAGE_INVALID:422',
      MODEL_HASH_MISMATCH: 'MODEL_HASH_MISMATCH:422', MODEL_SIGNATURE_INVALID: 'MODEL_SIGNATURE_INVALID:422', MODEL_LOAD_FAILED: 'MODEL_LOAD_FAILED:422', MODEL_SMOKE_TEST_FAILED: 'MODEL_SMOKE_TEST_FAILED:422',
      MODEL_VERSION_UNKNOWN: 'AGENT_MODEL_VERSION_UNKNOWN:404', INFERENCE_FAILED: 'AGENT_INFERENCE_FAILED:500', ENGINE_OVERLOADED: 'AGENT_ENGINE_OVERLOADED:503', ENGINE_CLOSED: 'AGENT_ENGINE_CLOSED:503',
      QUEUE_FULL: 'AGENT_QUEUE_FULL:507', QUEUE_ITEM_TOO_LARGE: 'AGENT_QUEUE_ITEM_TOO_LARGE:413', STORAGE_FAILED: 'AGENT_STORAGE_FAILED:507', UPLINK_MESSAGE_TOO_LARGE: 'AGENT_UPLINK_MESSAGE_TOO_LARGE:413',
      UPLINK_DISCONNECTED: 'AGENT_UPLINK_DISCONNECTED:503', UPLINK_PUBLISH_FAILED: 'AGENT_UPLINK_PUBLISH_FAILED:502', UPLINK_CLOSED: 'AGENT_UPLINK_CLOSED:503', UPLINK_SUBSCRIBE_REFUSED: 'AGENT_UPLINK_SUBSCRIBE_REFUSED:500',
      GREENGRASS_ENV_INCOMPLETE: 'AGENT_GREENGRASS_ENV_INCOMPLETE:500', GREENGRASS_IPC_FAILED: 'AGENT_GREENGRASS_IPC_FAILED:503', GREENGRASS_CONFIG_INVALID: 'AGENT_GREENGRASS_CONFIG_INVALID:422',
      NOT_FOUND: 'AGENT_NOT_FOUND:404', METHOD_NOT_ALLOWED: 'AGENT_METHOD_NOT_ALLOWED:405',
      // Was a string passed to parseWith by the Greengrass pub/sub input; now a catalogue entry.
      IPC_REQUEST_INVALID: 'AGENT_INPUT_INVALID:400',
    });
    expect(codesAndStatus(FleetErrors)).toMatchObject({
      USAGE: 'FLEET_USAGE:400', INPUT_INVALID: 'INPUT_INVALID:400', MODEL_PACKAGE_INVALID: 'MODEL_PACKAGE_INVALID:422', MODEL_HASH_MISMATCH: 'MODEL_HASH_MISMATCH:422',
      SAMPLE_CHUNK_INVALID: 'SAMPLE_CHUNK_INVALID:422', SAMPLE_HASH_MISMATCH: 'SAMPLE_HASH_MISMATCH:422', PACK_FAILED: 'FLEET_PACK_FAILED:422', KEY_INVALID: 'FLEET_KEY_INVALID:500',
      NOT_FOUND: 'FLEET_NOT_FOUND:404', AUTH_FAILED: 'FLEET_AUTH_FAILED:401', FORBIDDEN: 'FLEET_FORBIDDEN:403', CONFLICT: 'FLEET_CONFLICT:409', DEVICE_UNKNOWN: 'FLEET_DEVICE_UNKNOWN:404',
      DEVICE_EXISTS: 'FLEET_DEVICE_EXISTS:409', SAMPLE_DEVICE_MISMATCH: 'FLEET_SAMPLE_DEVICE_MISMATCH:403', SAMPLE_NOT_FOUND: 'FLEET_SAMPLE_NOT_FOUND:404',
      MODEL_VERSION_EXISTS: 'FLEET_MODEL_VERSION_EXISTS:409', MODEL_NOT_FOUND: 'FLEET_MODEL_NOT_FOUND:404', DATASET_NOT_FOUND: 'FLEET_DATASET_NOT_FOUND:404', ARTIFACT_NOT_FOUND: 'FLEET_ARTIFACT_NOT_FOUND:404',
      ARTIFACT_HASH_MISMATCH: 'FLEET_ARTIFACT_HASH_MISMATCH:422', TRAINING_NOT_CONFIGURED: 'FLEET_TRAINING_NOT_CONFIGURED:404', TRAINING_IN_PROGRESS: 'FLEET_TRAINING_IN_PROGRESS:409',
      TRAINER_UNKNOWN: 'FLEET_TRAINER_UNKNOWN:400', TRAINING_FAILED: 'FLEET_TRAINING_FAILED:500', TRAINING_TIMEOUT: 'FLEET_TRAINING_TIMEOUT:504', TRAINING_ABORTED: 'FLEET_TRAINING_ABORTED:499',
      TRAINING_OUTPUT_INVALID: 'FLEET_TRAINING_OUTPUT_INVALID:422', TRAINING_RUN_NOT_FOUND: 'FLEET_TRAINING_RUN_NOT_FOUND:404', TRAINING_CONFIG_INVALID: 'FLEET_TRAINING_CONFIG_INVALID:400',
      EVALUATION_FAILED: 'FLEET_EVALUATION_FAILED:422', BASE_SET_INVALID: 'FLEET_BASE_SET_INVALID:422', STORAGE_FAILED: 'FLEET_STORAGE_FAILED:507', AWS_CONFIG_INVALID: 'FLEET_AWS_CONFIG_INVALID:400',
      BROKER_CONNECT_FAILED: 'FLEET_BROKER_CONNECT_FAILED:502', AWS_LIMIT_EXCEEDED: 'FLEET_AWS_LIMIT_EXCEEDED:422', AWS_CALL_FAILED: 'FLEET_AWS_CALL_FAILED:502', AWS_JOB_FAILED: 'FLEET_AWS_JOB_FAILED:502',
    });
    expect(codesAndStatus(ClientErrors)).toEqual({ UNREACHABLE: 'FLEET_UNREACHABLE:503', RESPONSE_INVALID: 'FLEET_RESPONSE_INVALID:502' });
    expect(codesAndStatus(SharedErrors)).toMatchObject({ USAGE: 'USAGE:400', INTERNAL: 'INTERNAL:500', INPUT_INVALID: 'INPUT_INVALID:400', SAMPLE_HASH_MISMATCH: 'SAMPLE_HASH_MISMATCH:422' });
  });

  it('declares shared codes once: a side references the shared entry itself', () => {
    expect(AgentErrors.MODEL_SIGNATURE_INVALID).toBe(SharedErrors.MODEL_SIGNATURE_INVALID);
    expect(FleetErrors.INPUT_INVALID).toBe(SharedErrors.INPUT_INVALID);
    // Every wire code names one entry, whichever catalogue it is reached through.
    const seen = new Map<string, CatalogueEntry>();
    for (const c of [SharedErrors, AgentErrors, FleetErrors, ClientErrors]) {
      for (const e of Object.values<CatalogueEntry>(c)) {
        const before = seen.get(e.code);
        if (before) expect(e, e.code).toBe(before);
        seen.set(e.code, e);
      }
    }
    expect(entriesByCode(SharedErrors, AgentErrors, FleetErrors, ClientErrors).size).toBe(seen.size);
  });

  it('keeps the CLI exit code apart from the HTTP status: 2 for usage, 1 for every other error', () => {
    for (const c of [SharedErrors, AgentErrors, FleetErrors, ClientErrors]) {
      for (const e of Object.values<CatalogueEntry>(c)) expect(e.exit, e.code).toBe(/(^|_)USAGE$/.test(e.code) ? ExitCode.USAGE : ExitCode.FAILURE);
    }
    expect(new FleetError('USAGE')).toMatchObject({ code: 'FLEET_USAGE', status: 400, exit: 2 });
    expect(sharedError('USAGE', 'x')).toMatchObject({ code: 'USAGE', status: 400, exit: 2 });
    expect(new AgentError('QUEUE_FULL')).toMatchObject({ code: 'AGENT_QUEUE_FULL', status: 507, exit: 1, message: 'the sample queue is full' });
  });

  it('types each entry with its exact wire code', () => {
    expectTypeOf(AgentErrors.QUEUE_FULL.code).toEqualTypeOf<'AGENT_QUEUE_FULL'>();
    expectTypeOf(AgentErrors.INPUT_INVALID.code).toEqualTypeOf<'INPUT_INVALID'>();
    expectTypeOf(AgentErrors.IPC_REQUEST_INVALID.code).toEqualTypeOf<'AGENT_INPUT_INVALID'>();
    expectTypeOf(FleetErrors.TRAINING_FAILED.code).toEqualTypeOf<'FLEET_TRAINING_FAILED'>();
    expectTypeOf<'FLEET_USAGE'>().toExtend<FleetWireCode>();
    expectTypeOf<'FLEET_QUEUE_FULL'>().not.toExtend<FleetWireCode>();
    expectTypeOf<'MODEL_LOAD_FAILED'>().toExtend<AgentWireCode>();
    // @ts-expect-error a code that is in no catalogue does not compile
    expect(() => new AgentError('NO_SUCH_CODE')).toThrow();
  });
});

describe('parseWith', () => {
  const schema = z.strictObject({ n: z.number() });

  it('throws the shared code it is given, with the catalogue status and every issue', () => {
    expect(() => parseWith(schema, { n: 'x', m: 1 }, 'INPUT_INVALID', 'thing')).toThrow(expect.objectContaining({ code: 'INPUT_INVALID', status: 400, exit: 1, details: { issues: expect.arrayContaining([expect.stringMatching(/^n: /)]) } }));
  });

  it("throws a side's entry with that entry's status", () => {
    expect(() => parseJsonWith(schema, '{"n": 1', FleetErrors.STORAGE_FAILED, 'stored thing')).toThrow(expect.objectContaining({ code: 'FLEET_STORAGE_FAILED', status: 507, message: expect.stringMatching(/^stored thing is not valid JSON/) }));
    expect(() => parseWith(schema, {}, AgentErrors.IPC_REQUEST_INVALID, 'request')).toThrow(expect.objectContaining({ code: 'AGENT_INPUT_INVALID', status: 400 }));
  });
});

describe('CLI exit codes come from the catalogue', () => {
  const run = async (err: unknown): Promise<{ code: number; err: string[] }> => {
    const lines: string[] = [];
    const code = await dispatch(['go'], { out: () => undefined, err: (l) => lines.push(l) }, { help: 'help', commands: { go: () => Promise.reject(err) } });
    return { code, err: lines };
  };

  it('2 for usage errors, 1 for the rest, INTERNAL for anything uncatalogued', async () => {
    expect(await run(new FleetError('USAGE', 'bad flag'))).toEqual({ code: 2, err: ['FLEET_USAGE: bad flag'] });
    expect(await run(new FleetError('DEVICE_UNKNOWN', 'no d1'))).toEqual({ code: 1, err: ['FLEET_DEVICE_UNKNOWN: no d1'] });
    expect(await run(new Error('boom'))).toEqual({ code: 1, err: ['INTERNAL: boom'] });
    // An error read off the wire carries the exit code its reader gave it, not one guessed from the name.
    expect((await run(new EdgeloopError('FLEET_USAGE', 'from the server', { status: 400, exit: ExitCode.USAGE }))).code).toBe(2);
    expect((await run(new EdgeloopError('SOMETHING_USAGE', 'unknown code', { status: 400 }))).code).toBe(1);
  });

  it('the fleet client gives an answered code its catalogue exit code', () => {
    expect(exitCodeForCode('FLEET_USAGE')).toBe(2);
    expect(exitCodeForCode('USAGE')).toBe(2);
    expect(exitCodeForCode('FLEET_DEVICE_UNKNOWN')).toBe(1);
    expect(exitCodeForCode('FLEET_FROM_A_NEWER_VERSION')).toBe(1);
  });
});
