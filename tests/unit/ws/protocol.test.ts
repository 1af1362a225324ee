import { describe, expect, it } from 'vitest';
import { loadContract } from '../../../src/http/contract.ts';
import { clientMessage, matchTopic, mayRead, topicPatternsOf } from '../../../src/ws/protocol.ts';

const patterns = topicPatternsOf(loadContract().document as unknown as Record<string, unknown>);

describe('the topics of the contract', () => {
  it('match a host’s topic with its name, and hosts/* as a wildcard', () => {
    expect(matchTopic('hosts/h1', patterns)).toMatchObject({ kind: 'topic', param: 'h1' });
    expect(matchTopic('hosts/*', patterns)).toMatchObject({ kind: 'wildcard', prefix: 'hosts/' });
  });

  it('refuse names that are no pattern, or a parameter that is not a plain name', () => {
    for (const t of ['hosts', 'hosts/a/b', 'routes/x', 'hosts/../x', 'hosts/a b', 'runs/*']) {
      expect(matchTopic(t, patterns), t).toBeNull();
    }
  });

  it('give every topic to a viewer but the clients topic, which needs admin', () => {
    for (const t of ['hosts/h1', 'hosts/*', 'routes', 'firewall', 'runs', 'runs/abc']) {
      expect(mayRead('viewer', matchTopic(t, patterns)!, patterns), t).toBe(true);
    }
    const clients = matchTopic('clients', patterns)!;
    expect(mayRead('viewer', clients, patterns)).toBe(false);
    expect(mayRead('operator', clients, patterns)).toBe(false);
    expect(mayRead('admin', clients, patterns)).toBe(true);
  });
});

describe('client messages', () => {
  it('accept subscribe, unsubscribe and ping only, with nothing extra', () => {
    expect(clientMessage.safeParse({ type: 'subscribe', topics: ['routes'] }).success).toBe(true);
    expect(clientMessage.safeParse({ type: 'ping' }).success).toBe(true);
    expect(clientMessage.safeParse({ type: 'publish', topics: ['routes'] }).success).toBe(false);
    expect(
      clientMessage.safeParse({ type: 'subscribe', topics: ['routes'], extra: 1 }).success,
    ).toBe(false);
    expect(
      clientMessage.safeParse({ type: 'subscribe', topics: Array(65).fill('routes') }).success,
    ).toBe(false);
  });
});
