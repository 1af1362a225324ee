// `npm run bench [-- name ...]`: the benchmarks in sequence, then one summary table. Each one
// cleans up after itself; one that cannot run is reported and the others still run.
import { failoverCost } from './failover-cost.ts';
import { failoverSwitch } from './failover-switch.ts';
import { firewallBulk } from './firewall-bulk.ts';
import { hostsRps } from './hosts-rps.ts';
import { loadavg, log, renderSummary, type BenchResult } from './lib.ts';
import { liveLatency } from './live-latency.ts';
import { memory } from './memory.ts';
import { refreshStorm } from './refresh-storm.ts';
import { routesBulk } from './routes-bulk.ts';
import { routesBurst } from './routes-burst.ts';
import { routesLatency } from './routes-latency.ts';
import { runnerOverhead } from './runner-overhead.ts';
import { schedulePrecision } from './schedule-precision.ts';
import { watchCpu } from './watch-cpu.ts';
import { wsFanout } from './ws-fanout.ts';

const BENCHMARKS: Record<string, () => Promise<BenchResult>> = {
  'runner-overhead': runnerOverhead,
  'hosts-rps': hostsRps,
  'routes-bulk': routesBulk,
  'routes-burst': routesBurst,
  'routes-latency': routesLatency,
  'refresh-storm': refreshStorm,
  'schedule-precision': schedulePrecision,
  memory,
  'firewall-bulk': firewallBulk,
  'live-latency': liveLatency,
  'ws-fanout': wsFanout,
  'watch-cpu': watchCpu,
  'failover-switch': failoverSwitch,
  'failover-cost': failoverCost,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((n) => !(n in BENCHMARKS));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}\n`,
    );
    process.exitCode = 2;
    return;
  }
  const names = wanted.length > 0 ? wanted : Object.keys(BENCHMARKS);
  const results: BenchResult[] = [];
  const failed: string[] = [];
  for (const name of names) {
    const started = Date.now();
    try {
      results.push(await BENCHMARKS[name]!());
    } catch (err) {
      failed.push(name);
      process.stderr.write(`${name} could not run: ${(err as Error).stack ?? String(err)}\n`);
    }
    log(`${name}: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
  log(renderSummary(results));
  log(`\nload average at the end: ${loadavg()}`);
  if (failed.length > 0) {
    log(`could not run: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

void main();
