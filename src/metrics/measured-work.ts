import type { Knex } from 'knex';
import { HostWorkStore } from '../reconciler/host-work-store.ts';
import type { WriteLag } from './write-lag.ts';

/**
 * The host work rows, with each write's commit time noted for write-to-kernel lag: `bump` is
 * where a write learns its hosts' generations, and its transaction's commit is when it
 * counts (the claimer can see it from then on).
 */
export class MeasuredHostWorkStore extends HostWorkStore {
  constructor(
    knex: Knex,
    private readonly writes: WriteLag,
  ) {
    super(knex);
  }

  override async bump(trx: Knex.Transaction, hosts: Iterable<string>) {
    const ticket = await super.bump(trx, hosts);
    if (ticket.size > 0) {
      void trx.executionPromise?.then(
        () => this.writes.committed(ticket),
        () => undefined,
      );
    }
    return ticket;
  }
}
