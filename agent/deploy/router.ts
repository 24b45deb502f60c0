import type { Logger } from 'pino';
import { errorLine } from '../../shared/errors.js';
import { desiredSlotName, desiredState, MAX_MODEL_SLOTS, type DesiredState } from '../../shared/schemas/index.js';
import { parseJsonWith } from '../../shared/validate.js';
import { DeploymentController, type DeployTarget } from './controller.js';

/**
 * Desired states for an agent serving several models: one {@link DeploymentController} per
 * model slot, so each slot's installs, shadow runs, revisions and rollbacks are its own and a
 * desired state for one model never waits behind, or replaces, another's. A message names its
 * slot by the topic it came on (`.../desired/NAME`), its `model_name`, or (older fleets, on
 * `.../desired`) the model it names; one naming none goes to the default slot.
 */
export class DesiredRouter {
  private readonly controllers = new Map<string, DeploymentController>();
  private stopped = false;

  constructor(
    private readonly deviceId: string,
    private readonly targetFor: (slot: string) => DeployTarget,
    /** The default slot's name, for a desired state that names no model (null: none yet). */
    private readonly defaultSlot: () => string | null,
    private readonly log: Logger,
    private readonly token?: string,
    /** Every slot the device serves or is installing: a new one past {@link MAX_MODEL_SLOTS} is refused. */
    private readonly knownSlots: () => readonly string[] = () => [...this.controllers.keys()],
  ) {}

  /** A raw desired-state message; `topicSlot` is the model name of a per-model topic. Malformed, foreign or mismatched messages are logged and dropped. */
  onMessage(payload: Uint8Array, topicSlot: string | null = null): void {
    let d: DesiredState;
    try {
      d = parseJsonWith(desiredState, payload, 'INPUT_INVALID', 'desired state');
    } catch (err) {
      this.log.warn({ reason: errorLine(err) }, 'desired state rejected');
      return;
    }
    if (d.device_id !== this.deviceId) {
      this.log.warn({ for: d.device_id }, 'desired state for another device ignored');
      return;
    }
    const named = desiredSlotName(d);
    if (topicSlot !== null && named !== null && named !== topicSlot) {
      this.log.warn({ topic_model: topicSlot, model: named, revision: d.revision }, 'desired state names another model than its topic; ignored');
      return;
    }
    void this.submit(topicSlot !== null ? { ...d, model_name: topicSlot } : d);
  }

  /** Apply a desired state to its slot (see the class comment); resolves once that slot's controller is idle. */
  submit(d: DesiredState): Promise<void> {
    const slot = desiredSlotName(d) ?? this.defaultSlot();
    if (slot === null) {
      this.log.info({ revision: d.revision }, 'desired state names no model and no model is installed: nothing to do');
      return Promise.resolve();
    }
    const other = [d.active?.model, d.shadow?.model].find((m) => m && m.name !== slot);
    if (other) {
      // Each slot installs and rolls back its own model only: another model here would start a slot beside it.
      this.log.warn({ model_slot: slot, model: `${other.name}@${other.version}`, revision: d.revision }, 'desired state for one model slot names another model; ignored');
      return Promise.resolve();
    }
    let c = this.controllers.get(slot);
    if (!c && !this.knownSlots().includes(slot) && this.knownSlots().length >= MAX_MODEL_SLOTS) {
      // Its status could not list it (and would stop validating): refused, the other models run on.
      this.log.error({ code: 'AGENT_MODEL_SLOTS_FULL', model: slot, revision: d.revision, max: MAX_MODEL_SLOTS }, `desired state for a new model ${slot} refused: this device already serves ${MAX_MODEL_SLOTS} models`);
      return Promise.resolve();
    }
    if (!c) {
      if (this.stopped) return Promise.resolve();
      c = new DeploymentController(this.deviceId, this.targetFor(slot), this.log.child({ model_slot: slot }), this.token);
      this.controllers.set(slot, c);
    }
    return c.submit(d);
  }

  /** The agent is stopping: every slot's controller takes nothing new; resolves once none has a deployment in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.controllers.values()].map((c) => c.stop()));
  }
}
