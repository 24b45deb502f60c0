/**
 * `camera`: a 1080p 25 fps MJPEG stream (ffmpeg serving pre-encoded testsrc2 frames over HTTP,
 * in its own process) read by a real agent camera at the configured rate: frames processed
 * per second against the rate asked for, and the CPU the agent spends per frame (its Node
 * process: masking, preprocessing, inference, capture; plus its ffmpeg child: decode, fps
 * filter, JPEG encode) against ffmpeg decoding the same stream alone at the same rate.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Agent } from '../agent/agent.js';
import { parseAgentConfig } from '../agent/config.js';
import { fleetKeys, imagePackage } from '../test/helpers/packages.js';
import { waitFor } from '../test/helpers/wait.js';
import { round } from './stats.js';

const TICKS = 100; // USER_HZ on Linux

/** utime + stime of a live process, in ms (from /proc). */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS;
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg ${code}: ${err.slice(-500)}`))));
  });
}

/** ffmpeg serving `file` (concatenated 1080p JPEGs) as MJPEG over HTTP at 25 fps, looping, to one client. */
async function serveMjpeg(file: string): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const child = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-framerate', '25', '-f', 'mjpeg', '-i', file, '-c', 'copy', '-f', 'mpjpeg', '-listen', '1', `http://127.0.0.1:${port}/`], { stdio: 'ignore' });
  // No probe: a probe would be its one client. A reader that comes too early is refused and
  // retries (the camera reconnects with backoff; the decode-only reader is started after this).
  await new Promise((r) => setTimeout(r, 1000));
  return { url: `http://127.0.0.1:${port}/`, stop: () => void child.kill('SIGKILL') };
}

export interface CameraBenchOptions {
  /** Camera rate asked for (frames per second). */
  fps?: number;
  /** Measured seconds (after a warm-up). */
  seconds?: number;
}

export async function benchCamera(o: CameraBenchOptions = {}) {
  const fps = o.fps ?? 5;
  const seconds = o.seconds ?? 20;
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-camera-'));
  try {
    const frames = join(dir, 'frames.mjpeg');
    await run(['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=25', '-frames:v', '50', '-c:v', 'mjpeg', '-q:v', '5', '-f', 'mjpeg', frames]);
    const frameBytes = Math.round(readFileSync(frames).length / 50);

    // 1. The agent reading the stream.
    await imagePackage(join(dir, 'pkg'));
    const src = await serveMjpeg(frames);
    const config = parseAgentConfig({
      device_id: 'bench',
      data_dir: join(dir, 'data'),
      fleet_public_key: fleetKeys().publicKeyPem,
      models: { initial: join(dir, 'pkg') },
      http: { enabled: false },
      inference: { intra_op_threads: 1, warmup_runs: 1 },
      inputs: { cameras: [{ name: 'bench', url: src.url, fps }] },
    });
    const agent = await Agent.start(config, { log: pino({ level: 'warn' }) });
    let agentSide: { processed: number; dropped: number; inFrames: number; nodeMs: number; ffmpegMs: number };
    try {
      const cam = agent.cameraInputs!.cameras[0]!;
      if (!(await waitFor(() => cam.totals.frames_processed >= 3, 30_000, 50))) throw new Error('no camera frame processed');
      const pid = cam.sourcePid!;
      const t0 = { p: cam.totals.frames_processed, d: cam.totals.frames_dropped, i: cam.totals.frames_in, node: selfCpuMs(), ff: procCpuMs(pid), at: performance.now() };
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const wall = (performance.now() - t0.at) / 1000;
      agentSide = {
        processed: (cam.totals.frames_processed - t0.p) / wall,
        dropped: cam.totals.frames_dropped - t0.d,
        inFrames: (cam.totals.frames_in - t0.i) / wall,
        nodeMs: selfCpuMs() - t0.node,
        ffmpegMs: procCpuMs(pid) - t0.ff,
      };
      agentSide.nodeMs /= Math.max(1, agentSide.processed * wall);
      agentSide.ffmpegMs /= Math.max(1, agentSide.processed * wall);
    } finally {
      await agent.stop();
      src.stop();
    }

    // 2. ffmpeg alone: decode the same stream, same fps filter, no output.
    const src2 = await serveMjpeg(frames);
    let decodeMsPerFrame: number;
    let decodeMsPerDecoded: number;
    try {
      const dec = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-i', src2.url, '-an', '-vf', `fps=${fps}`, '-f', 'null', '-'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 3000));
      const c0 = procCpuMs(dec.pid!);
      const at = performance.now();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const cpu = procCpuMs(dec.pid!) - c0;
      const wall = (performance.now() - at) / 1000;
      dec.kill('SIGKILL');
      decodeMsPerFrame = cpu / (fps * wall);
      decodeMsPerDecoded = cpu / (25 * wall);
    } finally {
      src2.stop();
    }

    const agentMs = agentSide.nodeMs + agentSide.ffmpegMs;
    return {
      name: 'camera',
      // Frames processed per second over the rate asked for.
      value: round(agentSide.processed / fps, 3),
      target: '>= 0.95 of the configured fps; cpu_ratio reported',
      stream: { width: 1920, height: 1080, fps: 25, kind: 'mjpeg over http', jpeg_bytes: frameBytes },
      configured_fps: fps,
      processed_fps: round(agentSide.processed, 2),
      frames_in_fps: round(agentSide.inFrames, 2),
      dropped: agentSide.dropped,
      cpu_ms_per_frame: { agent_total: round(agentMs, 2), agent_node: round(agentSide.nodeMs, 2), agent_ffmpeg: round(agentSide.ffmpegMs, 2), ffmpeg_decode_only: round(decodeMsPerFrame, 2), one_decode: round(decodeMsPerDecoded, 2) },
      // Against ffmpeg alone at the same rate (it decodes every frame to pick 1 in 25/fps)...
      cpu_ratio: round(agentMs / decodeMsPerFrame, 2),
      // ...and against decoding only the frames kept (the floor for any reader that decodes).
      cpu_ratio_vs_one_decode: round(agentMs / decodeMsPerDecoded, 2),
      seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
