/**
 * Cameras against real streams made here: MJPEG over HTTP, snapshot URLs with Basic and
 * Digest authentication, GStreamer's RTSP server, all read through the real ffmpeg into a
 * real agent (ONNX Runtime, SQLite queue).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { Camera, type CameraStateChange } from '../../agent/inputs/camera.js';
import { cameraSchema, type CameraConfig } from '../../agent/inputs/camera-config.js';
import { sampleMeta, telemetry, type InferResult, type SampleMeta } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { startAedes } from '../helpers/broker.js';
import { captureLogger, startTestAgent } from '../helpers/agent.js';
import { movingFrames, rtspMissing, solidJpeg, startMjpegServer, startRtspServer, startSnapshotServer, type MjpegServer } from '../helpers/camera-streams.js';
import { missingBinary } from '../helpers/optional-binary.js';
import { imagePackage, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';

const ffmpegMissing = missingBinary('/usr/bin/ffmpeg', 'ffmpeg reads the camera streams (apt-get install ffmpeg)');
const until = (cond: () => boolean, what: string, ms = 45_000): Promise<void> => waitUntil(cond, ms, what, 25);

const CAPTURE_ALL = { min_confidence: 1, rate_limits: { low_confidence: { per_minute: 60_000, burst: 10_000 } } };

let tmp: ReturnType<typeof tempDir>;
let pkgDir: string;
beforeAll(async () => {
  tmp = tempDir();
  pkgDir = join(tmp.dir, 'pets');
  await imagePackage(pkgDir);
});
afterAll(() => tmp.cleanup());

/** Camera samples in the queue (leased and released again, so they stay). */
function cameraSamples(agent: Agent): Array<{ meta: SampleMeta; blob: Buffer }> {
  const items = agent.queue.lease(10_000, 60_000);
  agent.queue.release(items.map((i) => i.id));
  return items.map((i) => ({ meta: sampleMeta.parse(i.meta), blob: Buffer.from(i.blob!) })).filter((s) => s.meta.source === 'camera');
}

function cam(agent: Agent, name: string): Camera {
  const c = agent.cameraInputs?.cameras.find((x) => x.name === name);
  if (!c) throw new Error(`no camera ${name}`);
  return c;
}

/** Mean of one channel in a region given in relative coordinates. */
async function regionStats(jpeg: Buffer, x0: number, y0: number, x1: number, y1: number): Promise<{ mean: number; stdev: number }> {
  const meta = await sharp(jpeg).metadata();
  const w = meta.width!;
  const h = meta.height!;
  const left = Math.round(x0 * w);
  const top = Math.round(y0 * h);
  // stats() reads the pipeline's input, so the region is cut out first.
  const region = await sharp(jpeg)
    .extract({ left, top, width: Math.max(1, Math.round(x1 * w) - left), height: Math.max(1, Math.round(y1 * h) - top) })
    .png()
    .toBuffer();
  const s = await sharp(region).stats();
  return { mean: s.channels[0]!.mean, stdev: s.channels[0]!.stdev };
}

/** A black-and-white checkerboard with 8-pixel squares: blur turns it grey. */
async function checkerJpeg(w: number, h: number): Promise<Buffer> {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.fill(((x >> 3) + (y >> 3)) % 2 ? 255 : 0, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
}

describe.skipIf(ffmpegMissing)('MJPEG over HTTP into the agent', () => {
  let agent: Agent;
  let lines: Array<Record<string, unknown>>;
  let white: MjpegServer;
  let checker: MjpegServer;
  let moving: MjpegServer;
  let locked: MjpegServer;
  const LEFT_HALF: Array<[number, number]> = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]];
  const TRIANGLE: Array<[number, number]> = [[0.6, 0.1], [0.95, 0.1], [0.95, 0.9]];

  beforeAll(async () => {
    white = await startMjpegServer([await solidJpeg(320, 240, [255, 255, 255])], 10);
    checker = await startMjpegServer([await checkerJpeg(320, 240)], 10);
    moving = await startMjpegServer(await movingFrames(10), 10);
    locked = await startMjpegServer(await movingFrames(4), 10, { user: 'cam', pass: 'Mjpeg-S3cret' });
    ({ agent, lines } = await startTestAgent(join(tmp.dir, 'mjpeg-data'), {
      models: { initial: pkgDir },
      outlier: CAPTURE_ALL,
      inputs: {
        cameras: [
          { name: 'gate', url: moving.url, fps: 5, stall_timeout_s: 2, frozen_after_s: 1.5, backoff_initial_ms: 200, backoff_max_ms: 1000 },
          { name: 'masked', url: white.url, fps: 2, privacy: { zones: [LEFT_HALF, TRIANGLE] } },
          { name: 'full', url: white.url, fps: 2, privacy: { zones: [LEFT_HALF, TRIANGLE], model_sees: 'full' } },
          { name: 'blurred', url: checker.url, fps: 2, privacy: { zones: [LEFT_HALF], mode: 'blur', blur_sigma: 6 } },
          { name: 'locked', url: locked.urlWith('cam', 'Mjpeg-S3cret'), fps: 2 },
          { name: 'locked-bad', url: locked.urlWith('cam', 'Bad-Mjpeg-Pass'), fps: 2, backoff_initial_ms: 200 },
        ],
      },
    }));
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await Promise.all([white?.close(), checker?.close(), moving?.close(), locked?.close()]);
  });

  it('a camera frame reaches inference and is captured as a sample with source camera and the camera name', async () => {
    await until(() => cameraSamples(agent).some((s) => s.meta.origin === 'gate'), 'a sample from camera gate');
    const s = cameraSamples(agent).find((x) => x.meta.origin === 'gate')!;
    expect(s.meta).toMatchObject({ source: 'camera', origin: 'gate', device_id: 'test-device', model: { name: 'pets' }, input: { kind: 'image', content_type: 'image/jpeg' } });
    expect(s.blob.length).toBe(s.meta.input.bytes);
    expect((await sharp(s.blob).metadata()).width).toBe(320);
    const health = agent.health() as { cameras?: Array<{ name: string; state: string; frames_processed: number }> };
    expect(health.cameras?.find((c) => c.name === 'gate')).toMatchObject({ state: 'online' });
  });

  it('an MJPEG stream with credentials: read, and the password is on no command line, log or telemetry', async () => {
    const c = cam(agent, 'locked');
    await until(() => c.totals.frames_processed >= 1 && c.sourcePid !== undefined, 'frames from the locked stream');
    const argv = readFileSync(`/proc/${c.sourcePid}/cmdline`, 'utf8');
    expect(argv).toContain('ffmpeg');
    expect(argv).not.toContain('Mjpeg-S3cret');
    expect(argv).not.toContain('127.0.0.1');
    const bad = cam(agent, 'locked-bad');
    await until(() => bad.totals.reconnects >= 1, 'the bad camera retried');
    expect(bad.takeTelemetry()).toMatchObject({ state: 'offline', error: { code: 'AGENT_CAMERA_UNREACHABLE' } });
    expect(bad.health().error).toMatchObject({ message: expect.stringContaining('401') as unknown });
    const everything = JSON.stringify(lines) + JSON.stringify(agent.health());
    expect(everything).toContain('http://***@127.0.0.1');
    for (const secret of ['Mjpeg-S3cret', 'Bad-Mjpeg-Pass']) expect(everything).not.toContain(secret);
  });

  it('reports camera states and frame counts in telemetry', async () => {
    await until(() => cam(agent, 'gate').totals.frames_processed >= 2, 'processed frames');
    const t = telemetry.shape.cameras.parse(agent.cameraInputs!.takeTelemetry())!;
    const gate = t.find((c) => c.name === 'gate')!;
    expect(gate.state).toBe('online');
    expect(gate.frames_in).toBeGreaterThanOrEqual(gate.frames_processed);
    expect(gate.frames_processed).toBeGreaterThan(0);
  });

  it('blacks out the privacy zones on the stored frame, pixel by pixel', async () => {
    await until(() => cameraSamples(agent).some((s) => s.meta.origin === 'masked'), 'a sample from camera masked');
    const { blob } = cameraSamples(agent).find((s) => s.meta.origin === 'masked')!;
    // Inside the left-half rectangle and inside the triangle: black.
    expect((await regionStats(blob, 0.05, 0.1, 0.45, 0.9)).mean).toBeLessThan(10);
    expect((await regionStats(blob, 0.88, 0.15, 0.93, 0.25)).mean).toBeLessThan(10);
    // Outside both (right of the rectangle, below the triangle's diagonal): still white.
    expect((await regionStats(blob, 0.55, 0.6, 0.65, 0.95)).mean).toBeGreaterThan(240);
    expect((await regionStats(blob, 0.6, 0.92, 0.95, 0.98)).mean).toBeGreaterThan(240);
  });

  it('model_sees full: the model gets the whole picture, the stored frame is still masked', async () => {
    await until(() => cameraSamples(agent).some((s) => s.meta.origin === 'full'), 'a sample from camera full');
    const full = cameraSamples(agent).find((s) => s.meta.origin === 'full')!;
    const masked = cameraSamples(agent).find((s) => s.meta.origin === 'masked')!;
    expect((await regionStats(full.blob, 0.05, 0.1, 0.45, 0.9)).mean).toBeLessThan(10);
    expect((await regionStats(full.blob, 0.55, 0.6, 0.65, 0.95)).mean).toBeGreaterThan(240);
    // input_stats are computed on what the model was given: a white frame against a half-black one.
    expect(full.meta.input_stats!.brightness).toBeGreaterThan(masked.meta.input_stats!.brightness * 1.5);
  });

  it('blurs the privacy zones when mode is blur', async () => {
    await until(() => cameraSamples(agent).some((s) => s.meta.origin === 'blurred'), 'a sample from camera blurred');
    const { blob } = cameraSamples(agent).find((s) => s.meta.origin === 'blurred')!;
    const inside = await regionStats(blob, 0.1, 0.1, 0.4, 0.9);
    const outside = await regionStats(blob, 0.6, 0.1, 0.9, 0.9);
    expect(outside.stdev).toBeGreaterThan(90);
    expect(inside.stdev).toBeLessThan(15);
    expect(inside.mean).toBeGreaterThan(80);
    expect(inside.mean).toBeLessThan(180);
  });

  it('a killed stream is reconnected', async () => {
    const gate = cam(agent, 'gate');
    await until(() => gate.state === 'online' && moving.clients() > 0, 'gate online');
    const reconnects = gate.totals.reconnects;
    moving.dropClients();
    await until(() => gate.totals.reconnects > reconnects, 'a reconnect');
    const inAfter = gate.totals.frames_in;
    await until(() => gate.totals.frames_in > inAfter + 2 && gate.state === 'online', 'frames again after the reconnect');
    expect(lines.some((l) => l.msg === 'camera unreachable; reconnecting' && l.camera === 'gate' && l.code === 'AGENT_CAMERA_UNREACHABLE')).toBe(true);
  });

  it('a stalled stream trips the watchdog and comes back', async () => {
    const gate = cam(agent, 'gate');
    await until(() => gate.state === 'online', 'gate online');
    const reconnects = gate.totals.reconnects;
    moving.stall(true);
    try {
      await until(() => lines.some((l) => l.camera === 'gate' && typeof l.reason === 'string' && l.reason.startsWith('no frame for')), 'the watchdog line');
      await until(() => gate.totals.reconnects > reconnects, 'a reconnect after the stall');
    } finally {
      moving.stall(false);
    }
    await until(() => gate.state === 'online', 'gate online again');
  });

  it('a frozen picture is reported, and cleared when the picture moves again', async () => {
    const gate = cam(agent, 'gate');
    await until(() => gate.state === 'online', 'gate online');
    const changes: CameraStateChange[] = [];
    const off = agent.cameraInputs!.onState((c) => changes.push(c));
    moving.freeze(true);
    try {
      await until(() => gate.state === 'frozen', 'gate frozen');
      expect(changes).toContainEqual({ camera: 'gate', state: 'frozen', previous: 'online', error: { code: 'AGENT_CAMERA_FROZEN', message: expect.stringContaining('identical frames') as unknown } });
      const t = agent.cameraInputs!.takeTelemetry().find((c) => c.name === 'gate')!;
      expect(t).toMatchObject({ state: 'frozen', error: { code: 'AGENT_CAMERA_FROZEN' } });
      expect(lines.some((l) => l.camera === 'gate' && l.code === 'AGENT_CAMERA_FROZEN')).toBe(true);
    } finally {
      moving.freeze(false);
    }
    await until(() => gate.state === 'online', 'gate moving again');
    expect(changes.at(-1)).toEqual({ camera: 'gate', state: 'online', previous: 'frozen' });
    off();
  });
});

describe.skipIf(ffmpegMissing)('latest frame wins', () => {
  it('drops frames at the source under a slow model, counts them, and holds at most one waiting frame', async () => {
    const server = await startMjpegServer(await movingFrames(25), 25);
    const { log } = captureLogger();
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const config: CameraConfig = cameraSchema.parse({ name: 'fast', url: server.url, fps: 25 });
    // A model that takes 250 ms a frame, against a camera sending 25 frames a second.
    const camera = new Camera(config, {
      infer: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        calls++;
        await new Promise((r) => setTimeout(r, 250));
        running--;
        return [] as InferResult[];
      },
      models: () => ['pets'],
      ffmpegPath: 'ffmpeg',
      log,
      clock: { now: () => Date.now() },
      random: Math.random,
    });
    const heapBefore = process.memoryUsage().heapUsed;
    let worstBacklog = 0;
    const probe = setInterval(() => {
      const t = camera.totals;
      worstBacklog = Math.max(worstBacklog, t.frames_in - t.frames_processed - t.frames_dropped - t.frames_skipped);
    }, 5);
    camera.start();
    try {
      await until(() => camera.totals.frames_dropped >= 30, '30 dropped frames');
      const t = { ...camera.totals };
      expect(t.frames_processed).toBeGreaterThan(0);
      // Every frame is processed, dropped, in inference (one) or waiting (one).
      expect(t.frames_in - t.frames_processed - t.frames_dropped).toBeLessThanOrEqual(2);
      expect(worstBacklog).toBeLessThanOrEqual(2);
      expect(maxRunning).toBe(1);
      expect(calls).toBeLessThan(t.frames_in);
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
    } finally {
      clearInterval(probe);
      await camera.stop();
      await server.close();
    }
  });
});

describe('snapshot URLs with authentication', () => {
  for (const auth of ['basic', 'digest'] as const) {
    it(`polls a snapshot URL with ${auth} auth; a wrong password is reported without the password`, async () => {
      const frames = await movingFrames(3);
      const server = await startSnapshotServer({ auth, user: 'viewer', pass: 'Pa55-w0rd!', frames });
      const { agent, lines } = await startTestAgent(join(tmp.dir, `snap-${auth}`), {
        models: { initial: pkgDir },
        outlier: CAPTURE_ALL,
        inputs: {
          cameras: [
            { name: 'snap', url: server.url(), kind: 'snapshot', fps: 5 },
            { name: 'snap-bad', url: server.url('viewer', 'Wr0ng-S3cret'), kind: 'snapshot', fps: 5, backoff_initial_ms: 100 },
          ],
        },
      });
      try {
        await until(() => cameraSamples(agent).some((s) => s.meta.origin === 'snap'), 'a snapshot sample');
        expect(server.served()).toBeGreaterThan(0);
        const bad = cam(agent, 'snap-bad');
        await until(() => bad.totals.reconnects >= 1, 'the bad camera retried');
        expect(bad.state).toBe('offline');
        expect(bad.totals.frames_in).toBe(0);
        const t = agent.cameraInputs!.takeTelemetry();
        expect(t.find((c) => c.name === 'snap-bad')).toMatchObject({ state: 'offline', error: { code: 'AGENT_CAMERA_UNREACHABLE' } });
        expect(JSON.stringify(t.find((c) => c.name === 'snap-bad'))).toContain('401');
        const everything = JSON.stringify(lines) + JSON.stringify(t) + JSON.stringify(agent.health());
        expect(everything).toContain('AGENT_CAMERA_UNREACHABLE');
        expect(everything).toContain('***@127.0.0.1');
        for (const secret of ['Pa55-w0rd', 'Wr0ng-S3cret', encodeURIComponent('Pa55-w0rd!')]) expect(everything).not.toContain(secret);
      } finally {
        await agent.stop();
        await server.close();
      }
    }, 60_000);
  }
});

describe('watchdog on a slow camera', () => {
  it('does not restart a snapshot camera between its frames when they are further apart than stall_timeout_s', async () => {
    const server = await startSnapshotServer({ auth: 'basic', user: 'u', pass: 'slow-pass', frames: await movingFrames(2) });
    const { log } = captureLogger();
    const camera = new Camera(cameraSchema.parse({ name: 'slow', url: server.url(), kind: 'snapshot', fps: 0.8, stall_timeout_s: 0.3 }), {
      infer: () => Promise.resolve([] as InferResult[]),
      models: () => ['pets'],
      ffmpegPath: 'ffmpeg',
      log,
      clock: { now: () => Date.now() },
      random: Math.random,
    });
    camera.start();
    try {
      // Two frames 1.25 s apart, four times stall_timeout_s: the watchdog waits three periods.
      await until(() => camera.totals.frames_in >= 2, 'two slow frames');
      expect(camera.totals.reconnects).toBe(0);
      expect(camera.state).toBe('online');
    } finally {
      await camera.stop();
      await server.close();
    }
  });
});

describe.skipIf(ffmpegMissing)('camera telemetry over the uplink', () => {
  it('publishes each camera\'s state and counts in the telemetry message, credentials redacted', async () => {
    const broker = await startAedes();
    const server = await startSnapshotServer({ auth: 'digest', user: 'tm', pass: 'Telemetry-Pw1', frames: await movingFrames(3) });
    const { agent } = await startTestAgent(join(tmp.dir, 'telemetry'), {
      models: { initial: pkgDir },
      uplink: { kind: 'mqtt', url: broker.url, telemetry_interval_s: 0.5, backoff_initial_ms: 200 },
      inputs: {
        cameras: [
          { name: 'snap', url: server.url(), kind: 'snapshot', fps: 5 },
          // Nothing listens on port 1: ffmpeg fails at once, the camera stays offline.
          { name: 'dead', url: 'rtsp://admin:Dead-Cam-Pw@127.0.0.1:1/stream', fps: 1, backoff_initial_ms: 200 },
        ],
      },
    });
    const sub = await mqtt.connectAsync(broker.url, { clientId: 'telemetry-reader' });
    const payloads: string[] = [];
    sub.on('message', (_t, p) => payloads.push(p.toString()));
    await sub.subscribeAsync(topics.telemetry('test-device'), { qos: 1 });
    try {
      const done = (p: string): boolean => {
        const cams = telemetry.parse(JSON.parse(p)).cameras ?? [];
        return cams.some((c) => c.name === 'snap' && c.state === 'online' && c.frames_processed > 0) && cams.some((c) => c.name === 'dead' && c.state === 'offline' && c.error?.code === 'AGENT_CAMERA_UNREACHABLE');
      };
      await until(() => payloads.some(done), 'telemetry with both cameras');
      const p = payloads.find(done)!;
      expect(p).toContain('rtsp://***@127.0.0.1:1');
      for (const secret of ['Dead-Cam-Pw', 'Telemetry-Pw1']) expect(payloads.join('\n')).not.toContain(secret);
    } finally {
      await sub.endAsync();
      await agent.stop();
      await server.close();
      await broker.close();
    }
  });
});

describe('a frame that cannot be masked', () => {
  it('is skipped with AGENT_CAMERA_FRAME_INVALID and never captured unmasked', async () => {
    const good = await solidJpeg(64, 48, [255, 255, 255]);
    // Starts like a JPEG, then garbage: the privacy mask cannot decode it.
    const corrupt = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(400, 0x5a)]);
    const server = await startSnapshotServer({ auth: 'basic', user: 'u', pass: 'p4ssword', frames: [corrupt, good] });
    const { agent, lines } = await startTestAgent(join(tmp.dir, 'corrupt'), {
      models: { initial: pkgDir },
      outlier: CAPTURE_ALL,
      inputs: { cameras: [{ name: 'flaky', url: server.url(), kind: 'snapshot', fps: 10, privacy: { zones: [[[0, 0], [1, 0], [0, 1]]] } }] },
    });
    try {
      const c = cam(agent, 'flaky');
      await until(() => c.totals.frames_skipped >= 1 && c.totals.frames_processed >= 1, 'a skipped and a processed frame');
      expect(lines.some((l) => l.camera === 'flaky' && l.code === 'AGENT_CAMERA_FRAME_INVALID')).toBe(true);
      // Every stored frame is the masked good one: its top-left corner (inside the zone) is black.
      const samples = cameraSamples(agent);
      expect(samples.length).toBeGreaterThan(0);
      for (const s of samples) expect((await regionStats(s.blob, 0, 0, 0.2, 0.2)).mean).toBeLessThan(10);
    } finally {
      await agent.stop();
      await server.close();
    }
  });
});

describe.skipIf(ffmpegMissing || rtspMissing())('RTSP from GStreamer\'s RTSP server', () => {
  it('reads RTSP over TCP with credentials, reconnects after the server is killed, and never logs the password', async () => {
    let rtsp = await startRtspServer({ user: 'op', pass: 'Rtsp-S3cret' });
    const port = rtsp.port;
    const { agent, lines } = await startTestAgent(join(tmp.dir, 'rtsp-data'), {
      models: { initial: pkgDir },
      outlier: CAPTURE_ALL,
      inputs: {
        cameras: [
          { name: 'pit', url: rtsp.url('op', 'Rtsp-S3cret'), fps: 4, backoff_initial_ms: 200, backoff_max_ms: 1000 },
          // Wrong password: ffmpeg prints the URL in its error, which must come out redacted.
          { name: 'pit-bad', url: rtsp.url('op', 'Not-The-Pass'), fps: 4, backoff_initial_ms: 300 },
        ],
      },
    });
    try {
      const pit = cam(agent, 'pit');
      await until(() => cameraSamples(agent).some((s) => s.meta.origin === 'pit'), 'a sample from the RTSP camera');
      await until(() => pit.sourcePid !== undefined, 'the ffmpeg of pit');
      const argv = readFileSync(`/proc/${pit.sourcePid}/cmdline`, 'utf8');
      expect(argv).toContain('concat');
      expect(argv).not.toContain('Rtsp-S3cret');
      await until(() => cam(agent, 'pit-bad').totals.reconnects >= 1, 'the bad camera retried');
      await rtsp.kill();
      await until(() => pit.state === 'offline', 'pit offline after the kill');
      rtsp = await startRtspServer({ port, user: 'op', pass: 'Rtsp-S3cret' });
      const before = pit.totals.frames_in;
      await until(() => pit.state === 'online' && pit.totals.frames_in > before, 'pit back after the server restarted');
      const everything = JSON.stringify(lines) + JSON.stringify(agent.cameraInputs!.takeTelemetry()) + JSON.stringify(agent.health());
      expect(everything).toContain('401');
      expect(everything).toContain('rtsp://***@127.0.0.1');
      for (const secret of ['Rtsp-S3cret', 'Not-The-Pass']) expect(everything).not.toContain(secret);
    } finally {
      await agent.stop();
      await rtsp.kill();
    }
  }, 90_000);
});

describe('ffmpeg prerequisite', () => {
  it('an agent with a stream camera does not start without ffmpeg: AGENT_CAMERA_FFMPEG_MISSING', async () => {
    await expect(
      startTestAgent(join(tmp.dir, 'no-ffmpeg'), {
        http: { enabled: false },
        inputs: { ffmpeg_path: join(tmp.dir, 'no-such-ffmpeg'), cameras: [{ name: 'c', url: 'rtsp://u:p4ss@127.0.0.1:1/x', fps: 1 }] },
      }),
    ).rejects.toMatchObject({ code: 'AGENT_CAMERA_FFMPEG_MISSING' });
  });
});

