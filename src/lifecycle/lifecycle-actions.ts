import { ConflictError, NotFoundError } from '../http/errors.ts';
import {
  MANUAL_TRANSITIONS,
  REMOVED_STATUSES,
  type LifecycleStatus,
  type ManualAction,
} from './status.ts';

/** An object as the shared lifecycle actions see it. */
export interface LifecycleObject {
  id: string;
  status: LifecycleStatus;
  removedAt: Date | null;
}

/** What a kind's store gives the shared actions. */
export interface LifecycleObjects<T extends LifecycleObject> {
  get(id: string): Promise<T | null>;
  change(
    id: string,
    from: readonly LifecycleStatus[],
    change: { status: LifecycleStatus },
    actor: string,
    action: string,
  ): Promise<T | null>;
}

/**
 * Pause, resume and delete, and the errors that go with them, for any kind: the same words
 * and the same problem types whether the object is a route or a firewall rule.
 */
export class LifecycleActions<T extends LifecycleObject> {
  constructor(
    private readonly objects: LifecycleObjects<T>,
    /** How the kind names one object in messages ("Route", "Rule"). */
    private readonly noun: string,
    /** The key naming the object in a problem's extra fields ("route_id"). */
    private readonly idKey: string,
  ) {}

  async get(id: string): Promise<T> {
    const found = await this.objects.get(id);
    if (!found) throw new NotFoundError(`No ${this.noun.toLowerCase()} ${id}`);
    return found;
  }

  /** The object, which must still be live (not expired or deleted) to be `verb`. */
  async live(id: string, verb: string): Promise<T> {
    const found = await this.get(id);
    if (REMOVED_STATUSES.includes(found.status)) throw this.notLive(found, verb);
    return found;
  }

  async perform(id: string, action: ManualAction, actor: string): Promise<T> {
    const { from, to } = MANUAL_TRANSITIONS[action];
    if (action === 'delete') await this.live(id, 'deleted');
    const changed = await this.objects.change(id, from, { status: to }, actor, action);
    if (changed) return changed;
    const current = await this.get(id);
    if (action === 'delete') throw this.notLive(current, 'deleted');
    throw new ConflictError(
      `${this.noun} ${id} is ${current.status}; only ${from.join(' or ')} ${this.noun.toLowerCase()}s can be ${action}d`,
      { [this.idKey]: id, current_status: current.status },
    );
  }

  notLive(found: T, verb: string): NotFoundError {
    return new NotFoundError(
      `${this.noun} ${found.id} was ${found.status} at ${found.removedAt?.toISOString()} and cannot be ${verb}`,
    );
  }
}
