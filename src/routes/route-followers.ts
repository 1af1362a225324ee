import type { Actor } from '../auth/roles.ts';
import type { PlannedRoute } from './route-plan.ts';
import type { Route, RouteOpening } from './types.ts';

/**
 * What follows a route's lifecycle besides the route itself: its firewall openings (`allow`).
 * The routes service calls these; it knows nothing of firewalls.
 */
export interface RouteFollowers {
  /**
   * The canonical openings each planned route asks for (null: none), or a 400 naming the
   * field: checked before anything is stored.
   */
  openingsOf(planned: PlannedRoute[]): Promise<(RouteOpening[] | null)[]>;
  /** New routes that carry openings: their rules are created. */
  created(routes: Route[], actor: Actor): Promise<void>;
  /** A route was paused, resumed or deleted, or got a new schedule: its openings follow. */
  followed(
    route: Route,
    action: 'pause' | 'resume' | 'delete' | 'reschedule',
    actor: Actor,
  ): Promise<void>;
}
