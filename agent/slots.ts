import type { ModelRef } from '../shared/schemas/index.js';
import { AgentError } from './errors.js';
import { inferenceMetrics, InferenceService, registerModelGauges, type InferenceMetrics, type ServiceDeps } from './service.js';

/**
 * The model slots of an agent: one {@link InferenceService} per model name (a package's
 * manifest `name`), each with its own versions, shadow, outlier policy, drift and telemetry
 * window, and its own worker pool. The order is the order of the names given to `order` (the
 * model store's, first installed first); the first slot that serves is the default one.
 *
 * Before any model is installed there is one unnamed slot, so an agent always has a service
 * to show (`first`); the first model installed claims it.
 */
export class ModelSlots {
  private readonly byName = new Map<string, InferenceService>();
  private spare: InferenceService | null;
  private readonly metrics: InferenceMetrics;

  constructor(
    private readonly deps: Omit<ServiceDeps, 'sharedMetrics'>,
    private readonly order: () => readonly string[],
  ) {
    this.metrics = inferenceMetrics(deps.metrics);
    registerModelGauges(deps.metrics, () => this.all());
    this.spare = this.create();
  }

  private create(): InferenceService {
    return new InferenceService({ ...this.deps, sharedMetrics: this.metrics });
  }

  /** The slot of a model name, created (empty) when there is none yet. */
  slot(name: string): InferenceService {
    let s = this.byName.get(name);
    if (!s) {
      s = this.spare ?? this.create();
      this.spare = null;
      this.byName.set(name, s);
    }
    return s;
  }

  /** The slot of a model name, or null. */
  find(name: string): InferenceService | null {
    return this.byName.get(name) ?? null;
  }

  /** Every slot with a name, in slot order (names the store does not know yet last). */
  all(): InferenceService[] {
    return this.names().map((n) => this.byName.get(n)!);
  }

  /** Slot names in order: the store's, then any other slot. */
  names(): string[] {
    const order = this.order().filter((n) => this.byName.has(n));
    return [...order, ...[...this.byName.keys()].filter((n) => !order.includes(n))];
  }

  /** The models being served, in slot order. */
  serving(): ModelRef[] {
    return this.all().flatMap((s) => (s.activeRef ? [s.activeRef] : []));
  }

  /** The default slot: the first that serves, else the first, else the unnamed one. */
  get first(): InferenceService {
    const all = this.all();
    return all.find((s) => s.activeRef !== null) ?? all[0] ?? this.spare!;
  }

  /**
   * The slot a request names (`?model=NAME`), or the default one. An unknown name is
   * `AGENT_MODEL_NAME_UNKNOWN` (404) naming the models this agent serves.
   */
  route(name: string | undefined): InferenceService {
    if (name === undefined || name === '') return this.first;
    const s = this.byName.get(name);
    if (s?.activeRef) return s;
    const known = this.serving().map((r) => r.name);
    throw new AgentError('MODEL_NAME_UNKNOWN', `no model named ${JSON.stringify(name.slice(0, 64))} is served here; models: ${known.length ? known.join(', ') : '(none yet)'}`, { details: { model: name.slice(0, 64), models: known } });
  }

  async close(): Promise<void> {
    await Promise.all([...this.byName.values(), ...(this.spare ? [this.spare] : [])].map((s) => s.close()));
  }
}
