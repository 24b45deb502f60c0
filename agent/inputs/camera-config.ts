/**
 * Camera configuration (`inputs.cameras`): the zod schema, the stream kind a URL implies, and
 * redaction of the credentials a camera URL may carry. Pure: no I/O.
 */
import { z } from 'zod';

/** How frames are read: ffmpeg for streams and devices, Node's fetch for snapshot URLs. */
export type CameraKind = 'rtsp' | 'mjpeg' | 'snapshot' | 'device';

const relative = z.number().min(0).max(1);
const polygon = z.array(z.tuple([relative, relative])).min(3).describe('Polygon corners `[x, y]`, relative to the frame (0..1, top left is `[0, 0]`).');

const privacySchema = z.strictObject({
  zones: z.array(polygon).min(1).describe('Polygons hidden on every frame before it is captured or uplinked.'),
  mode: z.enum(['black', 'blur']).default('black').describe('`black` fills the zones; `blur` blurs them (Gaussian, `blur_sigma`).'),
  blur_sigma: z.number().positive().max(200).default(24).describe('Gaussian sigma of `mode: blur`, in pixels.'),
  model_sees: z.enum(['masked', 'full']).default('masked').describe('`masked`: the model gets the masked frame; `full`: the model gets the whole picture (operator allows it), captures and uplinks still get the masked one.'),
});

export const cameraSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'a name of 1-64 characters from A-Za-z0-9._-').describe('Camera name, unique: in samples (`origin`), telemetry and alert rules.'),
    url: z
      .string()
      .min(1)
      .refine((u) => impliedKind(u) !== null, 'must start with rtsp://, rtsps://, http://, https:// or /dev/')
      .refine((u) => ![...u].some((ch) => ch.charCodeAt(0) <= 0x20 || ch.charCodeAt(0) === 0x7f), 'must not contain spaces or control characters (percent-encode them)')
      .describe('`rtsp://[user:pass@]host[:port]/path` (RTSP over TCP), `http(s)://...` (MJPEG stream, or a snapshot with `kind: snapshot`), or a video device `/dev/videoN`. Credentials in the URL are redacted from logs, telemetry and errors.'),
    kind: z.enum(['rtsp', 'mjpeg', 'snapshot', 'device']).optional().meta({ description: 'How frames are read.', defaultText: 'from the URL: `rtsp` for rtsp(s)://, `mjpeg` for http(s)://, `device` for /dev/...' }),
    fps: z.number().positive().max(60).default(1).describe('Frames per second taken from the camera (ffmpeg drops the rest at the source; snapshots are polled at this rate).'),
    model: z.string().min(1).optional().describe('Name of the model slot this camera feeds (on an agent serving several models); absent: the default (first) model. Frames are skipped (counted) while no model of that name is served.'),
    rules: z.array(z.string().min(1)).optional().describe('Alert rules evaluated on this camera\'s results, by name.'),
    privacy: privacySchema.optional().describe('Privacy zones of this camera.'),
    stall_timeout_s: z.number().positive().default(10).describe('No frame for this long (and at least three frame periods): the stream is restarted (watchdog).'),
    frozen_after_s: z.number().positive().default(30).describe('Identical frames for this long: the camera is reported `frozen` (`AGENT_CAMERA_FROZEN`).'),
    backoff_initial_ms: z.number().int().positive().default(1000).describe('First reconnect delay (ms); doubles per failure, with jitter.'),
    backoff_max_ms: z.number().int().positive().default(30_000).describe('Longest reconnect delay (ms).'),
    max_frame_bytes: z.number().int().positive().default(8 * 1024 * 1024).describe('A frame larger than this is discarded (bounds the frame buffer).'),
    timeout_ms: z.number().int().positive().default(10_000).describe('Connect/read timeout of one snapshot request or stream open (ms).'),
  });

export type CameraConfig = z.infer<typeof cameraSchema>;

/** The kind a URL implies (http(s) is MJPEG unless `kind: snapshot`); null for an unsupported URL. */
function impliedKind(url: string): CameraKind | null {
  if (/^rtsps?:\/\//i.test(url)) return 'rtsp';
  if (/^https?:\/\//i.test(url)) return 'mjpeg';
  if (url.startsWith('/dev/')) return 'device';
  return null;
}

export function cameraKind(c: Pick<CameraConfig, 'url' | 'kind'>): CameraKind {
  return c.kind ?? impliedKind(c.url) ?? 'mjpeg';
}

/**
 * Checks on the raw config that the schema cannot express, run even when other keys fail so
 * one error names every problem: unique names, a `kind` that fits the URL.
 */
export function cameraNameProblems(raw: unknown): string[] {
  const cameras = (raw as { inputs?: { cameras?: unknown } } | null)?.inputs?.cameras;
  if (!Array.isArray(cameras)) return [];
  const seen = new Set<string>();
  const out: string[] = [];
  cameras.forEach((c: unknown, i) => {
    const { name, url, kind } = (c ?? {}) as { name?: unknown; url?: unknown; kind?: unknown };
    if (typeof name === 'string') {
      if (seen.has(name)) out.push(`inputs.cameras.${i}.name: ${name} is used by another camera`);
      seen.add(name);
    }
    const implied = typeof url === 'string' ? impliedKind(url) : null;
    if (implied && typeof kind === 'string' && kind !== implied && !(kind === 'snapshot' && implied === 'mjpeg')) out.push(`inputs.cameras.${i}.kind: ${kind} does not fit a ${implied} URL`);
  });
  return out;
}

const USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^/@\s?#]*)@/gi;

/** `rtsp://user:pass@host/x` -> `rtsp://***@host/x`: user and password never leave the process. */
export function redactUrl(url: string): string {
  return url.replace(USERINFO, '$1***@');
}

/** Redact every URL userinfo and the given secrets in free text (ffmpeg's stderr, error messages). */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = redactUrl(text);
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('***');
  return out;
}

/** The user name and password in a URL (decoded), for redaction and HTTP auth. */
export function urlCredentials(url: string): { username: string; password: string } | null {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return null;
    return { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
  } catch {
    return null;
  }
}

/** Secrets of a URL to scrub from free text: the raw and decoded user info. */
export function urlSecrets(url: string): string[] {
  const c = urlCredentials(url);
  if (!c) return [];
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/@\s?#]*)@/i.exec(url);
  return [m?.[1] ?? '', c.password, encodeURIComponent(c.password)].filter((s) => s.length >= 3);
}
