/**
 * Issue 15's done-check, end to end with real parts only: GStreamer's RTSP server streams a
 * scene (a red object on the haul road) at 10 fps; the agent reads it over RTSP/TCP through
 * ffmpeg into a real detector (ONNX Runtime) and a zone rule; its uplink to the fleet goes
 * through a site link that is cut. The zone alert reaches a site MQTT subscriber (aedes) while
 * the link is down; when the link returns, the alert is in the fleet with its frame (a JPEG that
 * decodes) and on the console alerts page (headless Chromium).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../agent/agent.js';
import { packModel } from '../../../fleet/adapters/fs/pack.js';
import type { AlertRecord } from '../../../shared/schemas/index.js';
import { rtspMissing, startRtspServer, type RtspServer } from '../../helpers/camera-streams.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { yoloV8Model } from '../../helpers/detect-models.js';
import { missingBinary } from '../../helpers/optional-binary.js';
import { fleetKeys } from '../../helpers/packages.js';
import { until } from './harness.js';
import { alertCardWithFrame, closeSite, consoleLogin, fleetAlerts, siteAgentConfig, startSite, startSiteAgent, type Site } from './site-harness.js';

const skip = missingBinary('/usr/bin/ffmpeg', 'ffmpeg reads the camera stream (apt-get install ffmpeg)') ?? rtspMissing();
const skipChromium = chromiumSkipReason();

/** 320x240, dark, with a pure red 80x80 object low on the right (inside the zone) and a blue one top left (outside it). */
async function scene(): Promise<Buffer> {
  const w = 320;
  const h = 240;
  const data = Buffer.alloc(w * h * 3, 16);
  const square = (x0: number, y0: number, size: number, rgb: [number, number, number]): void => {
    for (let y = y0; y < y0 + size; y++) for (let x = x0; x < x0 + size; x++) data.set(rgb, (y * w + x) * 3);
  };
  square(200, 140, 80, [255, 0, 0]);
  square(20, 20, 80, [0, 0, 255]);
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

describe.skipIf(skip !== null)('done-check: an RTSP camera raises a zone alert with the fleet link down', () => {
  let s: Site;
  let rtsp: RtspServer;
  let agent: Agent;

  beforeAll(async () => {
    s = await startSite({
      prefix: 'edgeloop-done-check-',
      device: 'pit-cam',
      tags: { site: 'pit-3' },
      model: { name: 'grid', version: '1.0.0' },
      link: true,
      // The fixture detector (test/helpers/detect-models.ts): red and blue objects, boxes where they are.
      pack: async (outDir, workDir) => {
        const onnx = join(workDir, 'grid.onnx');
        writeFileSync(onnx, yoloV8Model());
        await packModel({ onnxPath: onnx, outDir, name: 'grid', version: '1.0.0', labels: ['red', 'blue'], task: 'detection', detection: { decoder: 'yolo', padValue: 0 }, signKeyPem: fleetKeys().privateKeyPem });
      },
    });
    const image = join(s.tmp.dir, 'scene.png');
    writeFileSync(image, await scene());
    rtsp = await startRtspServer({ image, width: 320, height: 240, fps: 10 });
    // The link is down before the agent starts: it never reached the fleet when the alert fires.
    s.link!.cut();

    writeFileSync(
      join(s.tmp.dir, 'rules.json'),
      JSON.stringify({
        rules: [
          {
            id: 'haul-road',
            model: 'grid',
            camera: 'pit-east',
            labels: ['red'],
            min_score: 0.8,
            // The lower right quarter of the frame is the haul road.
            zone: { polygon: [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]], anchor: 'center' },
            severity: 'critical',
            actions: ['siren'],
          },
        ],
        actions: { siren: { kind: 'mqtt', url: s.site.url, topic: 'site/alarms/{{camera}}/{{rule}}' } },
      }),
    );
    agent = await startSiteAgent(
      s,
      siteAgentConfig(s, {
        // A still scene: its frames are identical, which is not what this test is about.
        inputs: { cameras: [{ name: 'pit-east', url: rtsp.url(), fps: 5, model: 'grid', frozen_after_s: 86_400 }] },
        alerts: { rules_file: join(s.tmp.dir, 'rules.json') },
      }),
    );
  }, 120_000);
  afterAll(async () => {
    try {
      await closeSite(s);
    } finally {
      await rtsp?.kill();
    }
  });

  it('the zone alert reaches the site subscriber at once with the link down, then the fleet with its frame, then the console', { timeout: 180_000 }, async () => {
    const cam = agent.cameraInputs!.cameras[0]!;
    await until('the RTSP camera is online and a frame was inferred', () => cam.state === 'online' && cam.totals.frames_processed > 0, 60_000);
    const online = Date.now();
    await until('the siren gets the zone alert', () => s.siren.length > 0, 30_000);
    const { at, payload } = s.siren[0]!;
    const record = JSON.parse(payload) as AlertRecord;
    // "At once": well within a few frames of the camera delivering (5 fps), on a loaded 2-core host.
    expect(at - online).toBeLessThan(10_000);
    expect(record).toMatchObject({ rule: 'haul-road', severity: 'critical', device_id: 'pit-cam', camera: 'pit-east', label: 'red', model: { name: 'grid', version: '1.0.0' }, frame: { width: 320, height: 240 } });
    // The red object's boxes, all inside the zone; the blue one (outside) is not in the alert.
    expect(record.detections.length).toBeGreaterThan(0);
    for (const d of record.detections) {
      expect(d.label).toBe('red');
      const [x1, y1, x2, y2] = d.box!;
      expect((x1 + x2) / 2 / 320).toBeGreaterThan(0.5);
      expect((y1 + y2) / 2 / 240).toBeGreaterThan(0.5);
    }
    expect((agent.health().uplink as { connected: boolean }).connected).toBe(false);
    await until('the alert frame waits in the agent queue', () => agent.queue.stats().depth >= 1, 30_000);
    expect(await fleetAlerts(s)).toEqual([]);

    s.link!.restore();
    await until('the alert is in the fleet', async () => (await fleetAlerts(s)).some((a) => a['alert_id'] === record.alert_id), 90_000);
    const a = (await fleetAlerts(s)).find((x) => x['alert_id'] === record.alert_id)!;
    expect(a).toMatchObject({ device_id: 'pit-cam', site: 'pit-3', camera: 'pit-east', rule: 'haul-road', severity: 'critical', label: 'red' });
    const blob = await fetch(`${s.svc.urls.http}/v1/samples/${String(a['sample_id'])}/blob`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(blob.headers.get('content-type')).toBe('image/jpeg');
    const jpeg = Buffer.from(await blob.arrayBuffer());
    expect(await sharp(jpeg).metadata()).toMatchObject({ format: 'jpeg', width: 320, height: 240 });
    // The frame is the camera's picture: red low right, blue top left (boxes drawn over the red one).
    const px = async (x: number, y: number): Promise<number[]> => [...(await sharp(jpeg).extract({ left: x, top: y, width: 1, height: 1 }).raw().toBuffer())];
    const [r1, g1, b1] = await px(240, 180);
    expect(r1).toBeGreaterThan(180);
    expect(Math.max(g1!, b1!)).toBeLessThan(80);
    const [r2, , b2] = await px(60, 60);
    expect(b2).toBeGreaterThan(180);
    expect(r2).toBeLessThan(80);

    if (skipChromium !== null) return;
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext()).newPage();
      await consoleLogin(page, s, '/console/alerts');
      const card = await alertCardWithFrame(page, record.alert_id, 320);
      const text = await page.textContent(card);
      expect(text).toContain('haul-road');
      expect(text).toContain('pit-east');
    } finally {
      await browser.close();
    }
  });
});
