import type { Logger } from 'pino';
import { agentDroppedIds, agentQueueStats, startAgentProcess, type AgentProcess } from '../fleet/demo/agent-process.js';
import type { SiteLink } from '../fleet/demo/link.js';
import type { QueueCounters } from './accounting.js';
import { noiseFrame } from './model.js';

/** What an agent's `/healthz` says that the campaign reads. */
export interface AgentHealth {
  model?: { name: string; version: string } | null;
  queue?: { depth: number; bytes: number; quota_bytes: number; evicted_total: number };
  uplink?: { connected: boolean } | null;
}

/** Side of a small camera frame, and of a frame sent to fill the queue quota (about 40 KB of noise). */
const FRAME_PX = 28;
const BIG_FRAME_PX = 200;

/**
 * One device of the campaign: its agent process (restarted on the same config and data
 * directory after a kill), its link to the broker, and its camera, a loop of `POST /v1/infer`
 * with distinct frames that records every sample id the agent returned.
 */
export class ChaosDevice {
  agent: AgentProcess | null = null;
  url: string | null = null;
  /** A fault on this device is in progress. */
  busy = false;
  readonly returned = new Set<string>();
  requests = 0;
  failures = 0;
  private frames = 0;
  private feeding: Promise<void> = Promise.resolve();
  private stopFeeding = true;

  constructor(
    readonly id: string,
    readonly index: number,
    readonly configPath: string,
    readonly dataDir: string,
    readonly link: SiteLink,
    private readonly log: Logger,
    private readonly compiled = false,
  ) {}

  /** Start the agent and wait for its ready line; a start that dies before ready is retried. */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const agent = startAgentProcess(this.configPath, {}, { ownGroup: true, compiled: this.compiled });
      this.agent = agent;
      try {
        this.url = (await agent.ready).http;
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        this.log.warn({ device: this.id, err: (err as Error).message }, 'agent did not start; trying again');
      }
    }
  }

  async kill(): Promise<void> {
    this.url = null;
    await this.agent?.stop('SIGKILL');
  }

  async stop(): Promise<void> {
    this.url = null;
    await this.agent?.stop('SIGTERM');
  }

  async health(): Promise<AgentHealth | null> {
    if (!this.url) return null;
    try {
      const res = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(5000) });
      return (await res.json()) as AgentHealth;
    } catch {
      return null;
    }
  }

  /** The device's own durable queue counters, read through the agent CLI. */
  counters(): Promise<QueueCounters> {
    return agentQueueStats(this.dataDir);
  }

  /** The ids the device's queue dropped for space, from its own durable record. */
  droppedIds(): Promise<Set<string>> {
    return agentDroppedIds(this.dataDir);
  }

  /** One frame through `/v1/infer`; returns whether a sample id came back (and records it). */
  async capture(big = false): Promise<boolean> {
    const url = this.url;
    if (!url) return false;
    // Frame seeds are unique across devices and restarts of the campaign process's counter.
    const seed = this.index * 100_000_000 + ++this.frames;
    const body = await noiseFrame(seed, big ? BIG_FRAME_PX : FRAME_PX);
    this.requests++;
    try {
      const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body, signal: AbortSignal.timeout(10_000) });
      if (!res.ok) {
        this.failures++;
        return false;
      }
      const out = (await res.json()) as { outlier?: { captured?: boolean; sample_id?: string } };
      if (out.outlier?.sample_id) {
        this.returned.add(out.outlier.sample_id);
        return true;
      }
      return false;
    } catch {
      // The agent is down or was killed mid-request: nothing was returned to this caller.
      this.failures++;
      return false;
    }
  }

  /** Keep feeding a frame every `everyMs` until {@link stopCamera}. */
  startCamera(everyMs: number): void {
    this.stopFeeding = false;
    this.feeding = (async () => {
      while (!this.stopFeeding) {
        const t = Date.now();
        await this.capture();
        await new Promise((r) => setTimeout(r, Math.max(this.url ? 0 : 200, everyMs - (Date.now() - t))));
      }
    })();
  }

  async stopCamera(): Promise<void> {
    this.stopFeeding = true;
    await this.feeding;
  }
}
