import { ROLES, roleSatisfies, type Actor, type Role } from './roles.ts';

/** Headers Kong sets upstream for an authenticated consumer (key-auth, then acl). */
export const KONG_HEADERS = {
  username: 'x-consumer-username',
  id: 'x-consumer-id',
  groups: 'x-consumer-groups',
  anonymous: 'x-anonymous-consumer',
} as const;

// Kong usernames are free text; the actor lands in logs and rows, so keep it printable.
const USERNAME = /^[A-Za-z0-9._@+-]{1,128}$/;

export type ConsumerResult =
  | { kind: 'actor'; actor: Actor }
  | { kind: 'unauthenticated'; detail: string }
  | { kind: 'no-role'; username: string };

/** The highest role among the consumer's ACL groups; other groups are not routeplane's. */
export function roleFromGroups(groups: readonly string[]): Role | null {
  let best: Role | null = null;
  for (const role of ROLES) {
    if (groups.includes(role) && (best === null || roleSatisfies(role, best))) best = role;
  }
  return best;
}

/**
 * Reads the consumer Kong authenticated. The caller has already checked the gateway secret:
 * without it none of these headers mean anything.
 */
export function consumerFromHeaders(header: (name: string) => string | undefined): ConsumerResult {
  if ((header(KONG_HEADERS.anonymous) ?? '').toLowerCase() === 'true') {
    return { kind: 'unauthenticated', detail: 'Anonymous consumers are not accepted' };
  }
  const username = header(KONG_HEADERS.username)?.trim() ?? '';
  const id = header(KONG_HEADERS.id)?.trim() ?? '';
  if (!USERNAME.test(username) || !id) {
    return { kind: 'unauthenticated', detail: 'The gateway did not identify a consumer' };
  }
  const groups = (header(KONG_HEADERS.groups) ?? '')
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  const role = roleFromGroups(groups);
  if (!role) return { kind: 'no-role', username };
  return { kind: 'actor', actor: { name: username, role } };
}
