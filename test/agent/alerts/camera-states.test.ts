/**
 * Camera offline and frozen-picture alerts: the pure decision (cooldown, resolved, camera
 * filter), then real MJPEG streams made here read through the real ffmpeg into a real agent,
 * whose alerts reach a site broker (aedes) subscriber and the uplink queue.
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../agent/agent.js';
import { parseRuleSet } from '../../../agent/alerts/load.js';
import { CameraStateAlerts } from '../../../shared/alerts/camera-states.js';
import { sampleMeta, type AlertRecord } from '../../../shared/schemas/index.js';
import { startTestAgent } from '../../helpers/agent.js';
import { startAedes, type AedesHandle } from '../../helpers/broker.js';
import { movingFrames, startMjpegServer, type MjpegServer } from '../../helpers/camera-streams.js';
import { missingBinary } from '../../helpers/optional-binary.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { waitUntil } from '../../helpers/wait.js';

const MODEL = { name: 'pets', version: '1.0.0' };

function alerts(states: unknown): CameraStateAlerts {
  const set = parseRuleSet({ camera_states: states, actions: { siren: { kind: 'webhook', url: 'http://127.0.0.1:1/' } } });
  let n = 0;
  return new CameraStateAlerts(set.camera_states, 'dev-1', { now: () => 0 }, () => (n++ % 32) / 32);
}

describe('camera state alerts (pure)', () => {
  it('offline raises one alert per cooldown per camera, and one resolved alert when the camera is back', () => {
    const a = alerts({ offline: { severity: 'critical', cooldown_s: 60, actions: ['siren'] } });
    const ev = (state: 'online' | 'offline' | 'frozen', previous: 'online' | 'offline' | 'frozen', ts: number, camera = 'gate') => a.observe({ camera, state, previous, ts, model: MODEL });
    const first = ev('offline', 'online', 0);
    expect(first.map((f) => [f.record.rule, f.record.severity, f.record.label, f.record.camera, f.rule.actions])).toEqual([['camera_offline', 'critical', 'offline', 'gate', ['siren']]]);
    expect(ev('online', 'offline', 1_000).map((f) => [f.record.rule, f.record.severity, f.record.label, f.resolved])).toEqual([['camera_offline', 'info', 'resolved', true]]);
    // Flapping inside the cooldown: no second alert, so no second resolved either.
    expect(ev('offline', 'online', 2_000)).toEqual([]);
    expect(ev('online', 'offline', 3_000)).toEqual([]);
    // Another camera has its own cooldown.
    expect(ev('offline', 'online', 3_000, 'pit')).toHaveLength(1);
    // After the cooldown it is an alert again.
    expect(ev('offline', 'online', 61_000)).toHaveLength(1);
    // Frozen is not configured: nothing.
    expect(ev('frozen', 'online', 62_000, 'yard')).toEqual([]);
  });

  it('frozen with a camera filter and without a resolved alert; nothing configured means nothing raised', () => {
    const a = alerts({ frozen: { cameras: ['gate'], resolved: false, cooldown_s: 0 } });
    expect(a.observe({ camera: 'pit', state: 'frozen', previous: 'online', ts: 0, model: MODEL })).toEqual([]);
    const f = a.observe({ camera: 'gate', state: 'frozen', previous: 'online', ts: 0, model: MODEL });
    expect(f.map((x) => [x.record.rule, x.record.severity])).toEqual([['camera_frozen', 'warning']]);
    expect(a.observe({ camera: 'gate', state: 'online', previous: 'frozen', ts: 10, model: MODEL })).toEqual([]);
    expect(alerts({}).enabled).toBe(false);
  });

  it('an action a camera_states entry names must exist (named with the rest)', () => {
    expect(() => parseRuleSet({ camera_states: { offline: { actions: ['nope'] }, frozen: { severity: 'loud' } } })).toThrow(/camera_states\.offline\.actions\.0: no action named nope[\s\S]*camera_states\.frozen\.severity|camera_states\.frozen\.severity[\s\S]*camera_states\.offline\.actions\.0: no action named nope/);
  });
});

const ffmpegMissing = missingBinary('/usr/bin/ffmpeg', 'ffmpeg reads the camera streams (apt-get install ffmpeg)');
const until = (cond: () => boolean, what: string, ms = 45_000): Promise<void> => waitUntil(cond, ms, what, 25);

describe.skipIf(ffmpegMissing !== null)('camera state alerts on real streams', () => {
  const tmp = tempDir('edgeloop-camera-alerts-');
  let site: AedesHandle;
  let sub: MqttClient;
  let gate: MjpegServer;
  let yard: MjpegServer;
  let agent: Agent;
  const siren: AlertRecord[] = [];

  beforeAll(async () => {
    await imagePackage(join(tmp.dir, 'pets'));
    site = await startAedes();
    sub = await mqtt.connectAsync(site.url);
    sub.on('message', (_t, p) => siren.push(JSON.parse(p.toString()) as AlertRecord));
    await sub.subscribeAsync('site/cameras/#', { qos: 1 });
    gate = await startMjpegServer(await movingFrames(6), 8);
    yard = await startMjpegServer(await movingFrames(6), 8);
    ({ agent } = await startTestAgent(join(tmp.dir, 'data'), {
      models: { initial: join(tmp.dir, 'pets') },
      // Nothing but alerts is captured, so the queue holds exactly the alerts' frames.
      outlier: { min_confidence: 0, min_margin: 0, max_entropy: 1, random_sample_rate: 0 },
      inputs: {
        cameras: [
          { name: 'gate', url: gate.url, fps: 5, frozen_after_s: 1, stall_timeout_s: 2, backoff_initial_ms: 200, backoff_max_ms: 500 },
          { name: 'yard', url: yard.url, fps: 5, frozen_after_s: 1, stall_timeout_s: 2, backoff_initial_ms: 200, backoff_max_ms: 500 },
        ],
      },
      alerts: {
        camera_states: { offline: { severity: 'critical', cooldown_s: 300, actions: ['site'] }, frozen: { severity: 'warning', cooldown_s: 0, actions: ['site'] } },
        actions: { site: { kind: 'mqtt', url: site.url, topic: 'site/cameras/{{camera}}/{{rule}}' } },
      },
    }));
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await Promise.all([gate?.close(), yard?.close()]);
    await sub?.endAsync();
    await site?.close();
    tmp.cleanup();
  });

  const queued = (): Array<{ rule: string; label: string; camera?: string | undefined; blob: Buffer }> => {
    const items = agent.queue.lease(1000, 60_000);
    agent.queue.release(items.map((i) => i.id));
    return items.map((i) => {
      const m = sampleMeta.parse(i.meta);
      return { rule: m.alert!.rule, label: m.alert!.label, camera: m.alert!.camera, blob: Buffer.from(i.blob!) };
    });
  };

  it('a frozen picture raises camera_frozen through the actions and the uplink with the frozen frame; moving again resolves it', { timeout: 60_000 }, async () => {
    const cam = agent.cameraInputs!.cameras.find((c) => c.name === 'gate')!;
    await until(() => cam.state === 'online' && cam.picture !== undefined, 'gate online with a picture');
    expect(siren).toEqual([]);
    gate.freeze(true);
    await until(() => siren.some((a) => a.rule === 'camera_frozen' && a.camera === 'gate'), 'the frozen alert at the site broker');
    const frozen = siren.find((a) => a.rule === 'camera_frozen')!;
    expect(frozen).toMatchObject({ severity: 'warning', label: 'frozen', device_id: 'test-device', camera: 'gate' });
    await until(() => queued().some((q) => q.rule === 'camera_frozen' && q.label === 'frozen'), 'the frozen alert queued for the fleet');
    const q = queued().find((x) => x.rule === 'camera_frozen')!;
    // Its frame is the camera's picture (320x240 from the stream), not the placeholder.
    expect(await sharp(q.blob).metadata()).toMatchObject({ format: 'jpeg', width: 320, height: 240 });
    gate.freeze(false);
    await until(() => siren.some((a) => a.rule === 'camera_frozen' && a.label === 'resolved'), 'the resolved alert');
    expect(siren.find((a) => a.label === 'resolved')).toMatchObject({ severity: 'info', camera: 'gate' });
  });

  it('a stream that stops raises camera_offline once, and resolved when it is back', { timeout: 60_000 }, async () => {
    const cam = agent.cameraInputs!.cameras.find((c) => c.name === 'yard')!;
    await until(() => cam.state === 'online', 'yard online');
    const port = yard.port;
    await yard.close();
    await until(() => siren.some((a) => a.rule === 'camera_offline' && a.camera === 'yard'), 'the offline alert at the site broker');
    expect(siren.find((a) => a.rule === 'camera_offline')).toMatchObject({ severity: 'critical', label: 'offline', camera: 'yard' });
    // Reconnect attempts keep failing: one alert (cooldown 300 s), not one per attempt.
    const attempts = cam.totals.reconnects;
    await until(() => cam.totals.reconnects >= attempts + 3, 'three more reconnect attempts');
    expect(siren.filter((a) => a.rule === 'camera_offline' && a.label === 'offline')).toHaveLength(1);
    yard = await startMjpegServer(await movingFrames(6), 8, undefined, port);
    await until(() => siren.some((a) => a.rule === 'camera_offline' && a.label === 'resolved'), 'the resolved alert when the stream is back');
    await until(() => queued().some((x) => x.rule === 'camera_offline' && x.label === 'offline'), 'the offline alert queued for the fleet');
  });
});
