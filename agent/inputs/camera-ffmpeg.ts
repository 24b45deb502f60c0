/**
 * Frames from ffmpeg run as a child process (spawn, no shell): it reads the camera (RTSP over
 * TCP, a V4L2 device, or an HTTP MJPEG stream that Node fetches and writes to its stdin),
 * drops frames to the configured rate with the `fps` filter, and writes JPEGs to stdout, cut
 * by {@link JpegSplitter}. An MJPEG stream is already JPEGs: Node cuts it and hands ffmpeg only
 * the frames at the rate, so ffmpeg decodes 5 of a 25 fps camera's frames, not 25.
 *
 * A camera URL is never an ffmpeg argument, so its credentials are not readable by other
 * users in /proc/PID/cmdline: an RTSP URL goes to ffmpeg's stdin in an ffconcat list (with
 * `rtsp_transport tcp` as a per-file option), and an MJPEG stream is fetched by Node (Basic
 * and Digest authentication, the same code as for snapshots) and its body written to stdin.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { AgentError } from '../errors.js';
import { redactText, urlSecrets, type CameraKind } from './camera-config.js';
import { JpegSplitter } from './camera-jpeg.js';
import { AuthenticatedGet, fetchFailure } from './camera-snapshot.js';

/** One running reader of a camera: frames out, one `onEnd` when it stops for any reason. */
export interface FrameSource {
  stop(): void;
  /** Operating-system process id, when the source is a child process (benchmarks read its CPU). */
  readonly pid?: number | undefined;
}

export interface FrameSink {
  onFrame(jpeg: Buffer): void;
  /** The source ended (exit, error, stop); `reason` is redacted. Called once. */
  onEnd(reason: string): void;
}

export interface FfmpegInput {
  kind: Exclude<CameraKind, 'snapshot'>;
  url: string;
  fps: number;
  timeoutMs: number;
}

/** ffmpeg's arguments for a camera: quiet, no stdin, JPEG frames at `fps` on stdout. */
export function ffmpegArgs(i: FfmpegInput): string[] {
  const input =
    i.kind === 'rtsp'
      ? // The URL goes in an ffconcat list on stdin (rtspList), not on the command line.
        ['-f', 'concat', '-safe', '0', '-protocol_whitelist', 'pipe,rtsp,rtsps,rtp,srtp,tcp,udp,tls,crypto', '-i', 'pipe:0']
      : i.kind === 'mjpeg'
        ? // The frames Node selected from the HTTP stream arrive on stdin, already at the rate. One
          // decoder thread: frame threading would hold frames back (a frame out only after
          // `threads` more came in), which the feed's in-flight bound would wait on.
          ['-threads', '1', '-f', 'mjpeg', '-i', 'pipe:0']
        : ['-f', 'v4l2', '-i', i.url];
  // MJPEG: one frame out per frame in (Node did the rate); otherwise the fps filter drops at the source.
  const rate = i.kind === 'mjpeg' ? ['-vsync', '0'] : ['-vf', `fps=${i.fps}`];
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'error',
    // A live source: do not wait to fill a probe buffer or keep frames back. The MJPEG pipe
    // has its format forced and each frame says its size, so ffmpeg starts at the first frame
    // (a larger probe waited for 500 KB: 25 s of a small 10 fps stream).
    '-fflags', 'nobuffer', '-probesize', i.kind === 'mjpeg' ? '32' : '500000', '-analyzeduration', i.kind === 'mjpeg' ? '0' : '1000000',
    ...input,
    '-an', ...rate, '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '4', 'pipe:1',
  ];
}

/**
 * The ffconcat list that hands ffmpeg an RTSP URL on stdin: one entry, RTSP over TCP, the
 * socket timeout. Quotes in the URL are escaped the ffconcat way.
 */
export function rtspList(url: string, timeoutMs: number): string {
  return `ffconcat version 1.0\nfile '${url.replace(/'/g, "'\\''")}'\noption rtsp_transport tcp\noption timeout ${Math.round(timeoutMs * 1000)}\n`;
}

/** Start ffmpeg for one camera. Frames and the end go to `sink`. */
export function startFfmpeg(ffmpegPath: string, input: FfmpegInput, maxFrameBytes: number, sink: FrameSink): FrameSource & { splitter: JpegSplitter } {
  const secrets = urlSecrets(input.url);
  const splitter = new JpegSplitter(maxFrameBytes);
  let ended = false;
  let stderrTail = '';
  const end = (reason: string): void => {
    if (ended) return;
    ended = true;
    sink.onEnd(redactText(reason, secrets));
  };
  let child: ChildProcess;
  try {
    child = spawn(ffmpegPath, ffmpegArgs(input), { stdio: [input.kind === 'device' ? 'ignore' : 'pipe', 'pipe', 'pipe'], windowsHide: true });
  } catch (err) {
    end(`ffmpeg did not start: ${(err as Error).message}`);
    return { stop: () => undefined, splitter };
  }
  const flow = { written: 0, emitted: 0 };
  child.stdout!.on('data', (d: Buffer) => {
    for (const f of splitter.push(d)) {
      flow.emitted++;
      sink.onFrame(f);
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderrTail = (stderrTail + d.toString('utf8')).slice(-2000);
  });
  child.on('error', (err) => end(`ffmpeg failed: ${err.message}`));
  child.on('close', (code, signal) => end(`ffmpeg exited (${signal ?? `code ${code}`})${stderrTail.trim() ? `: ${lastLines(stderrTail)}` : ''}`));
  const controller = new AbortController();
  const kill = (): void => {
    controller.abort();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  if (input.kind === 'rtsp') {
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(rtspList(input.url, input.timeoutMs));
  }
  if (input.kind === 'mjpeg') void feedMjpeg(input, maxFrameBytes, child, flow, controller.signal, (reason) => {
    end(reason);
    kill();
  });
  return { pid: child.pid, splitter, stop: kill };
}

/**
 * GET the MJPEG stream (with its credentials), cut it into JPEGs, and write one to ffmpeg's
 * stdin every 1/fps seconds: the frames in between are dropped here, before anything decodes
 * them. At most MAX_IN_FFMPEG frames are with ffmpeg at a time; newer ones are dropped
 * meanwhile, so a slow ffmpeg (starting up, a busy CPU) never gets a backlog in the pipe that
 * it would later emit as a burst of old frames.
 */
async function feedMjpeg(input: FfmpegInput, maxFrameBytes: number, child: ChildProcess, flow: { written: number; emitted: number }, signal: AbortSignal, fail: (reason: string) => void): Promise<void> {
  const stdin = child.stdin!;
  // ffmpeg gone (EPIPE): its 'close' ends the source.
  stdin.on('error', () => undefined);
  let lastWrite = 0;
  const connect = new AbortController();
  const timer = setTimeout(() => connect.abort(new Error(`no answer within ${input.timeoutMs} ms`)), input.timeoutMs);
  const periodMs = 1000 / input.fps;
  let due = 0;
  try {
    const res = await new AuthenticatedGet(input.url).get(AbortSignal.any([signal, connect.signal]));
    clearTimeout(timer);
    if (!res.body) throw new Error('the stream has no body');
    const splitter = new JpegSplitter(maxFrameBytes);
    for await (const chunk of Readable.fromWeb(res.body as WebReadableStream<Uint8Array>, { signal })) {
      for (const frame of splitter.push(chunk as Buffer)) {
        const now = performance.now();
        if (now < due) continue;
        // A frame ffmpeg could not decode never comes out: after a second, stop waiting for it.
        if (flow.written - flow.emitted >= MAX_IN_FFMPEG && now - lastWrite < 1000) continue;
        if (flow.written - flow.emitted >= MAX_IN_FFMPEG) flow.written = flow.emitted + 1;
        // The next slot counts from the schedule, not from now, so the rate holds on average;
        // after a gap (a stall, a slow camera) it restarts from now instead of bursting.
        due = Math.max(due + periodMs, now + periodMs / 2);
        lastWrite = now;
        flow.written++;
        stdin.write(frame);
      }
    }
    // The camera ended the stream: ffmpeg finishes and exits, and the camera reconnects.
    stdin.end();
  } catch (err) {
    clearTimeout(timer);
    stdin.end();
    if (!signal.aborted) fail(`MJPEG stream failed: ${connect.signal.aborted ? String(connect.signal.reason) : fetchFailure(err)}`);
  }
}

/**
 * Frames written to ffmpeg and not out yet, at most: its MJPEG parser holds a frame until the
 * next one begins, and probing the stream at start takes the first two. Fewer stalled every
 * start for the one-second rescue.
 */
const MAX_IN_FFMPEG = 4;

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
}

/**
 * The device prerequisite: ffmpeg must be installed (Greengrass cannot apt-install it).
 * Throws `AGENT_CAMERA_FFMPEG_MISSING` naming the path and the fix.
 */
export function checkFfmpeg(ffmpegPath: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(ffmpegPath, ['-hide_banner', '-version'], { timeout: timeoutMs }, (err, stdout) => {
      if (err) {
        reject(
          new AgentError('CAMERA_FFMPEG_MISSING', `cameras need ffmpeg, and ${ffmpegPath} does not run (${(err as NodeJS.ErrnoException).code ?? err.message}); install it on the device (apt-get install ffmpeg) or set inputs.ffmpeg_path`, { cause: err }),
        );
        return;
      }
      resolve(stdout.split('\n')[0] ?? 'ffmpeg');
    });
  });
}
