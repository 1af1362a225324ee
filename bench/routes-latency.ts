// Latency: one route created through the API (POST /v1/routes, default wait) until the answer
// says it is in the kernel, against
// - the cold bare run: a new ansible-playbook process of apply.yml with that one route (same
//   module, the same desired file the reconciler writes, same environment) and a fresh
//   ControlPath, so a new SSH connection: how routeplane ran before the warm runner;
// - the physical limit: one `ip route replace` over an SSH master that is already open.
// Median of K each, interleaved. Goals: API p50 at most 0.5 s, and at most 0.65x the cold bare
// run. Also where the API's time goes, from the run's timestamps.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { load } from 'js-yaml';
import { moduleRoute } from '../src/routes/route-results.ts';
import {
  benchServer,
  databaseLabel,
  envInt,
  isMain,
  log,
  median,
  ms,
  ratio,
  runAsScript,
  table,
  tempDir,
  withCleanup,
  type BenchResult,
} from './lib.ts';
import {
  PROTO,
  api,
  applyHostVars,
  bareApply,
  benchFleet,
  destinations,
  flushOwned,
  kernelCount,
  type ApiRoute,
} from './routes-lib.ts';

const NAME = 'routes-latency';
const DEADLINE_MS = 290_000;

interface RunBody {
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  status: string;
}

interface ApiSample {
  totalMs: number;
  /** request sent → run row inserted (HTTP, validation, route insert + work row, claim, run insert) */
  acceptMs: number;
  /** run inserted → running (slot, update) */
  queueMs: number;
  /** running → finished (workspace, ansible-playbook, SSH cleanup, results) */
  runMs: number;
  /** run finished → answer read (sync write, route re-read, response) */
  replyMs: number;
}

export async function routesLatency(): Promise<BenchResult> {
  const reps = envInt('BENCH_REPS', 5, 1, 50);
  log(
    `== ${NAME}: one route, API create (wait) vs bare ansible-playbook, median of ${reps}, ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, 1);
    const host = fleet.hosts[0]!;
    const server = await benchServer(cleanup, { INVENTORY: fleet.inventoryPath });
    const scratch = await tempDir(cleanup, 'latency');
    const dests = destinations(3 * reps + 3, 0);
    let next = 0;

    const apiCreate = async (): Promise<ApiSample> => {
      const to = dests[next++]!;
      const sentAt = Date.now();
      const r = await api<ApiRoute>(server, 'POST', '/v1/routes', {
        host: host.name,
        to,
        dev: 'eth0',
      });
      const receivedAt = Date.now();
      if (r.status !== 201 || r.body.sync.state !== 'in_sync') {
        throw new Error(`POST /v1/routes: ${r.status} ${JSON.stringify(r.body)}`);
      }
      if ((await kernelCount(host.netns)) !== 1) throw new Error(`${to} is not in the kernel`);
      const run = (await api<RunBody>(server, 'GET', `/v1/runs/${r.body.sync.run_id}`)).body;
      // Untimed: take it out again so that every sample applies exactly one route.
      const del = await api<ApiRoute>(server, 'DELETE', `/v1/routes/${r.body.id}`);
      if (del.status !== 200 || (await kernelCount(host.netns)) !== 0) {
        throw new Error(`DELETE: ${del.status} ${JSON.stringify(del.body)}`);
      }
      const created = Date.parse(run.created_at);
      const started = Date.parse(run.started_at!);
      const finished = Date.parse(run.finished_at!);
      return {
        totalMs: r.ms,
        acceptMs: created - sentAt,
        queueMs: started - created,
        runMs: finished - started,
        replyMs: receivedAt - finished,
      };
    };

    const bareCreate = async (): Promise<number> => {
      const to = dests[next++]!;
      const route = moduleRoute({
        id: '00000000-0000-4000-8000-000000000000',
        to,
        table: 254,
        metric: 1024,
        via: null,
        dev: 'eth0',
        scope: null,
        src: null,
        onlink: false,
        force: false,
      } as Parameters<typeof moduleRoute>[0]);
      const hostVars = await applyHostVars(
        server,
        new Map([[host.name, { proto: PROTO, routes: [route] }]]),
      );
      const r = await bareApply({ scratch, inventoryPath: fleet.inventoryPath, hostVars });
      if ((await kernelCount(host.netns)) !== 1) throw new Error(`${to} is not in the kernel`);
      await flushOwned(host.netns);
      return r.ms;
    };

    // The physical limit: the same change as one command over an SSH master already open,
    // made with the host's own connection settings from the inventory.
    const inv = load(await readFile(fleet.inventoryPath, 'utf8')) as {
      lab: { hosts: Record<string, Record<string, string>> };
    };
    const conn = inv.lab.hosts[host.name]!;
    const socket = path.join(scratch, 'floor.sock');
    const sshArgs = [
      '-i',
      conn.ansible_ssh_private_key_file!,
      ...conn.ansible_ssh_common_args!.split(/\s+/).filter(Boolean),
      '-o',
      `ControlPath=${socket}`,
      '-o',
      'BatchMode=yes',
      `${conn.ansible_user}@${conn.ansible_host}`,
    ];
    await execa('ssh', ['-M', '-f', '-N', '-o', 'ControlPersist=120', ...sshArgs]);
    cleanup.defer('ssh floor master', async () => {
      await execa('ssh', ['-O', 'exit', ...sshArgs], { reject: false });
    });
    const sshFloor = async (): Promise<number> => {
      const to = dests[next++]!;
      const t0 = performance.now();
      await execa('ssh', [
        ...sshArgs,
        'ip',
        'route',
        'replace',
        to,
        'dev',
        'eth0',
        'proto',
        String(PROTO),
      ]);
      const elapsed = performance.now() - t0;
      if ((await kernelCount(host.netns)) !== 1) throw new Error(`${to} is not in the kernel`);
      await flushOwned(host.netns);
      return elapsed;
    };

    // One untimed round (ansible's caches, the host's first SSH connection, the warm process),
    // then K rounds rotating which side goes first.
    await apiCreate();
    await bareCreate();
    await sshFloor();
    const apiSamples: ApiSample[] = [];
    const bareSamples: number[] = [];
    const floorSamples: number[] = [];
    const sides = [
      async () => apiSamples.push(await apiCreate()),
      async () => bareSamples.push(await bareCreate()),
      async () => floorSamples.push(await sshFloor()),
    ];
    for (let i = 0; i < reps; i++) {
      for (let k = 0; k < sides.length; k++) await sides[(i + k) % sides.length]!();
      log(
        `round ${i + 1}/${reps}: API ${ms(apiSamples.at(-1)!.totalMs)}, cold bare ${ms(bareSamples.at(-1)!)}, ssh floor ${ms(floorSamples.at(-1)!)}`,
      );
    }
    const apiMs = median(apiSamples.map((x) => x.totalMs));
    const bareMs = median(bareSamples);
    const floorMs = median(floorSamples);
    const r = apiMs / bareMs;
    log('');
    log(
      table([
        ['way', 'median', 'samples (ms)'],
        [
          'API POST /v1/routes (wait)',
          ms(apiMs),
          apiSamples.map((x) => x.totalMs.toFixed(0)).join(' '),
        ],
        [
          'cold bare ansible-playbook, 1 route',
          ms(bareMs),
          bareSamples.map((x) => x.toFixed(0)).join(' '),
        ],
        [
          'ip route replace over an open SSH master',
          ms(floorMs),
          floorSamples.map((x) => x.toFixed(0)).join(' '),
        ],
      ]),
    );
    log('');
    log('API breakdown (medians, from the run record; ms resolution):');
    const med = (k: keyof ApiSample) => ms(median(apiSamples.map((x) => x[k])));
    log(
      table([
        ['phase', 'median', 'what'],
        ['accept', med('acceptMs'), 'HTTP, validation, route insert + work row, claim, run insert'],
        ['queue', med('queueMs'), 'run slot, mark running'],
        ['run', med('runMs'), 'workspace, ansible-playbook (warm fork), result extraction'],
        ['reply', med('replyMs'), 'run finish, sync write, work row, route re-read, response'],
      ]),
    );
    log('');
    log(`API p50 / 0.5 s = ${ratio(apiMs / 500)} (goal <= 1.00x)`);
    log(`API / cold bare ansible-playbook = ${ratio(r)} (goal <= 0.65x), ${ms(apiMs - bareMs)}`);
    log(`API / physical limit (one command over an open SSH master) = ${ratio(apiMs / floorMs)}`);
    return {
      name: NAME,
      rows: [
        {
          what: `single create to kernel, p50 of ${reps}, vs 0.5 s`,
          subject: ms(apiMs),
          baseline: ms(500),
          ratio: apiMs / 500,
          goal: '<= 1.00x',
          met: apiMs <= 500,
        },
        {
          what: `single create to kernel vs cold bare ansible-playbook (median of ${reps})`,
          subject: ms(apiMs),
          baseline: ms(bareMs),
          ratio: r,
          goal: '<= 0.65x',
          met: r <= 0.65,
        },
        {
          what: 'single create to kernel vs one command over an open SSH master (diagnostic)',
          subject: ms(apiMs),
          baseline: ms(floorMs),
          ratio: apiMs / floorMs,
          goal: '-',
          met: true,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(routesLatency);
