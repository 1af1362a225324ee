export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** viewer < operator < admin: a role satisfies every requirement at or below it. */
export function roleSatisfies(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/** Who made a request: recorded as the actor of every change and run. */
export interface Actor {
  name: string;
  role: Role;
}
