import type { Knex } from 'knex';
import * as m001 from './001_runs.ts';
import * as m002 from './002_host_snapshots.ts';
import * as m003 from './003_routes.ts';
import * as m004 from './004_run_process.ts';
import * as m005 from './005_route_kernel_integers.ts';
import * as m006 from './006_host_work.ts';
import * as m007 from './007_firewall_rules.ts';
import * as m008 from './008_firewall_sets.ts';
import * as m009 from './009_route_openings.ts';
import * as m010 from './010_instance_addresses.ts';
import * as m011 from './011_live_topics.ts';
import * as m012 from './012_route_failover.ts';

type Migration = { up: (k: Knex) => Promise<void>; down: (k: Knex) => Promise<void> };

// Listed explicitly so the same migrations run from TypeScript sources, the compiled build and
// tests, without knex scanning a directory for files. Append only; never edit a landed one.
const migrations: Record<string, Migration> = {
  '001_runs': m001,
  '002_host_snapshots': m002,
  '003_routes': m003,
  '004_run_process': m004,
  '005_route_kernel_integers': m005,
  '006_host_work': m006,
  '007_firewall_rules': m007,
  '008_firewall_sets': m008,
  '009_route_openings': m009,
  '010_instance_addresses': m010,
  '011_live_topics': m011,
  '012_route_failover': m012,
};

export const migrationSource: Knex.MigrationSource<string> = {
  // Sorted: numbers decide the order, whatever order the entries were added in.
  getMigrations: async () => Object.keys(migrations).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => migrations[name]!,
};
