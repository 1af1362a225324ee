import type { Actor } from '../auth/roles.ts';
import { ConflictError } from '../http/errors.ts';
import type { RouteFollowers } from '../routes/route-followers.ts';
import type { PlannedRoute } from '../routes/route-plan.ts';
import type { Route, RouteOpening, RouteSpec } from '../routes/types.ts';
import type { FirewallService } from './firewall-service.ts';
import type { FirewallStore } from './firewall-store.ts';
import type { RuleInput } from './rule-input.ts';

type Schedule = { createAt: Date | null; deleteAt: Date | null };

/** The rule an opening of a route is: forward accept to the route's destination. */
function ruleInputOf(spec: RouteSpec, o: RouteOpening, schedule: Schedule): RuleInput {
  return {
    host: spec.host,
    chain: 'forward',
    family: spec.family === 4 ? 'ip' : 'ip6',
    protocol: o.protocol,
    src: o.src,
    dst: [spec.to],
    dport: o.dport,
    action: 'accept',
    create_at: schedule.createAt?.toISOString() ?? null,
    delete_at: schedule.deleteAt?.toISOString() ?? null,
  };
}

/**
 * A route's firewall openings (`allow`): firewall rules linked to the route (route_id),
 * created with it and following its pauses, resumes, deletion and schedule. They also render
 * only while the route is active (firewall-kind.ts), so a moment between the route's change
 * and theirs never opens traffic for a route that is gone.
 */
export class RouteOpenings implements RouteFollowers {
  constructor(
    private readonly rules: FirewallService,
    private readonly store: FirewallStore,
  ) {}

  async openingsOf(planned: PlannedRoute[]): Promise<(RouteOpening[] | null)[]> {
    const wanted = planned.map((p) =>
      (p.input.allow ?? []).map((a, i) => ({
        input: ruleInputOf(
          p.spec,
          { protocol: a.protocol ?? 'any', dport: a.dport ?? [], src: a.src ?? [] },
          p.schedule,
        ),
        // The rule's own checks (sets, management), each named where the request put it.
        base: `${p.base}/allow/${i}`,
      })),
    );
    const rules = await this.rules.plan(wanted.flat());
    let next = 0;
    return wanted.map((items) => {
      if (items.length === 0) return null;
      return items.map(() => {
        const { spec } = rules[next++]!;
        return { protocol: spec.protocol, dport: spec.match.dport, src: spec.match.src };
      });
    });
  }

  async created(routes: Route[], actor: Actor): Promise<void> {
    const inputs = routes.flatMap((r) =>
      (r.allow ?? []).map((o, i) => ({
        input: { ...ruleInputOf(r, o, r), comment: `opening of route ${r.id}` },
        base: `/route/${r.id}/allow/${i}`,
        routeId: r.id,
      })),
    );
    if (inputs.length > 0) await this.rules.create(inputs, actor);
  }

  async followed(
    route: Route,
    action: 'pause' | 'resume' | 'delete' | 'reschedule',
    actor: Actor,
  ): Promise<void> {
    for (const rule of await this.store.liveOfRoute(route.id)) {
      try {
        if (action === 'reschedule') {
          await this.rules.patch(
            rule.id,
            {
              create_at: route.createAt?.toISOString() ?? null,
              delete_at: route.deleteAt?.toISOString() ?? null,
            },
            actor,
          );
        } else await this.rules[action](rule.id, actor);
      } catch (err) {
        // An opening already in that state (paused by hand, say) has nothing to follow.
        if (!(err instanceof ConflictError)) throw err;
      }
    }
  }
}
