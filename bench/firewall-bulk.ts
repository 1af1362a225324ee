// Firewall bulk: R rules on each of H lab hosts created through the API (batch POSTs of up to
// 1,000, each waiting for its apply run) until every answer says the rules are in sync, against
// - the physical limit: `nft -f` of the same tables straight in each namespace, all at once;
// - the floor with Ansible: bare ansible-playbook with one `ansible.builtin.command: nft -f -`
//   task per host fed the same table text (no fence, no hashes, no templating: what
//   routeplane's safety steps and rendering add is the difference);
// and one rule created on one host (API to nft) against one route (API to kernel).
// The tables for the baselines are the ones routeplane applied, listed back from each host.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { dump } from 'js-yaml';
import type { RunningServer } from '../src/server.ts';
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
import { api, bareAnsible, benchFleet, moduleWindows, type FleetHost } from './routes-lib.ts';

const NAME = 'firewall-bulk';
const DEADLINE_MS = 600_000;
const BATCH = 1000;

interface Settings {
  hosts: number;
  rules: number;
  reps: number;
}

function settings(): Settings {
  return {
    hosts: envInt('BENCH_HOSTS', 20, 1, 60),
    rules: envInt('BENCH_RULES', 5000, 1, 20000),
    reps: envInt('BENCH_REPS', 3, 1, 10),
  };
}

/** Rule i of a host: tcp to its own port from its own /24, so every rule is distinct. */
function ruleOf(host: string, i: number) {
  return {
    host,
    chain: 'input',
    protocol: 'tcp',
    src: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
    dport: [String(1024 + (i % 60000))],
    action: 'accept',
  };
}

const nsExec = (h: FleetHost, args: string[], input?: string) =>
  execa('ip', ['netns', 'exec', h.netns, ...args], { input });

/** How many of routeplane's rules (those carrying a rule id) a host's table holds. */
async function ruleCount(h: FleetHost): Promise<number> {
  const r = await nsExec(h, ['nft', 'list', 'table', 'inet', 'routeplane']).catch(() => null);
  return r ? r.stdout.split('comment "rp:').length - 1 : 0;
}

async function dropTables(hosts: FleetHost[]): Promise<void> {
  await Promise.all(
    hosts.map((h) =>
      nsExec(h, ['nft', 'delete', 'table', 'inet', 'routeplane']).catch(() => undefined),
    ),
  );
}

async function expectCounts(hosts: FleetHost[], n: number, what: string): Promise<void> {
  for (const h of hosts) {
    const got = await ruleCount(h);
    if (got !== n) throw new Error(`${what}: ${h.name} holds ${got} rules, expected ${n}`);
  }
}

async function created<T>(
  server: RunningServer,
  url: string,
  body: unknown,
): Promise<{ ms: number; body: T }> {
  const r = await api<T>(server, 'POST', url, body);
  if (r.status !== 201) {
    throw new Error(`POST ${url}: ${r.status} ${JSON.stringify(r.body).slice(0, 500)}`);
  }
  return { ms: r.ms, body: r.body };
}

export async function firewallBulk(): Promise<BenchResult> {
  const s = settings();
  log(
    `== ${NAME}: ${s.rules} rules on each of ${s.hosts} lab hosts, then one rule vs one route ` +
      `(median of ${s.reps}), ${databaseLabel()} ==`,
  );
  return withCleanup(NAME, DEADLINE_MS, async (cleanup) => {
    const fleet = await benchFleet(cleanup, s.hosts);
    const hosts = fleet.hosts;
    const names = hosts.map((h) => h.name);
    const server = await benchServer(cleanup, {
      INVENTORY: fleet.inventoryPath,
      BODY_LIMIT: '64mb',
      ROUTE_WAIT_S: '590',
      RUN_TIMEOUT_S: '590',
    });
    const scratch = await tempDir(cleanup, 'fw');
    // Untimed, as in routes-bulk: a running server has reached its hosts (SSH masters open).
    await Promise.all(names.map((n) => api(server, 'GET', `/v1/hosts/${n}?refresh=true`)));

    // 1. The API: every host's rules as batch POSTs, all at once, each waiting for its run.
    const bodies: unknown[][] = [];
    for (const h of names) {
      for (let i = 0; i < s.rules; i += BATCH) {
        bodies.push(
          Array.from({ length: Math.min(BATCH, s.rules - i) }, (_, k) => ruleOf(h, i + k)),
        );
      }
    }
    const epoch0 = Date.now();
    const t0 = performance.now();
    await Promise.all(bodies.map((b) => created(server, '/v1/firewall/rules', b)));
    const apiMs = performance.now() - t0;
    await expectCounts(hosts, s.rules, 'API');
    const windows = await moduleWindows(hosts, epoch0);
    const longest = new Map<string, number>();
    for (const w of windows)
      longest.set(w.host, Math.max(longest.get(w.host) ?? 0, w.end - w.start));
    log(
      `API: ${bodies.length} POSTs of up to ${BATCH} rules; every answer in sync after ${ms(apiMs)}; ` +
        `module per host ${ms(median([...longest.values()]))} (median of each host's longest)`,
    );

    // The tables routeplane applied, as nft lists them: the baselines apply exactly these.
    const dir = path.join(scratch, 'tables');
    await mkdir(dir, { recursive: true });
    const fileOf = (h: FleetHost) => path.join(dir, `${h.name}.nft`);
    for (const h of hosts) {
      const listed = (await nsExec(h, ['nft', 'list', 'table', 'inet', 'routeplane'])).stdout;
      await writeFile(fileOf(h), `${listed}\n`);
    }

    // 2. The physical limit: nft -f of each table in its namespace, all at once.
    await dropTables(hosts);
    const p0 = performance.now();
    await Promise.all(hosts.map((h) => nsExec(h, ['nft', '-f', fileOf(h)])));
    const physicalMs = performance.now() - p0;
    await expectCounts(hosts, s.rules, 'nft -f');
    const nftOne = median(
      await Promise.all(
        hosts.slice(0, 5).map(async (h) => {
          await nsExec(h, ['nft', 'delete', 'table', 'inet', 'routeplane']);
          const t = performance.now();
          await nsExec(h, ['nft', '-f', fileOf(h)]);
          return performance.now() - t;
        }),
      ),
    );
    log(
      `nft -f in ${hosts.length} namespaces at once: ${ms(physicalMs)} (one alone: ${ms(nftOne)})`,
    );

    // 3. The floor with Ansible: one command task per host fed its table.
    await dropTables(hosts);
    const playbook = path.join(dir, 'floor.yml');
    await writeFile(
      playbook,
      dump(
        [
          {
            name: 'The floor: nft -f per host',
            hosts: 'all',
            gather_facts: false,
            tasks: [
              {
                name: 'nft -f',
                'ansible.builtin.command': {
                  cmd: 'nft -f -',
                  stdin: `{{ lookup('ansible.builtin.file', '${dir}/' ~ inventory_hostname ~ '.nft') }}`,
                },
              },
            ],
          },
        ],
        { lineWidth: -1 },
      ),
    );
    const floor = await bareAnsible({
      scratch,
      inventoryPath: fleet.inventoryPath,
      hosts: names,
      extravars: {},
      playbook,
    });
    await expectCounts(hosts, s.rules, 'floor');
    log(`floor (bare ansible-playbook, nft -f - task): ${ms(floor.ms)}`);

    // 4. One rule against one route on one host, API to the host's tables, interleaved.
    const h1 = hosts[0]!;
    const oneRule: number[] = [];
    const oneRoute: number[] = [];
    for (let i = 0; i < s.reps; i++) {
      const rule = await created<{ id: string }>(server, '/v1/firewall/rules', {
        ...ruleOf(h1.name, s.rules + i),
      });
      oneRule.push(rule.ms);
      const route = await created<{ id: string }>(server, '/v1/routes', {
        host: h1.name,
        to: `198.18.${i}.0/24`,
        dev: 'eth0',
      });
      oneRoute.push(route.ms);
    }
    const ruleMs = median(oneRule);
    const routeMs = median(oneRoute);
    log(`one rule: ${oneRule.map(ms).join(', ')}; one route: ${oneRoute.map(ms).join(', ')}`);

    const moduleMs = median([...longest.values()]);
    // What routeplane's module spends besides nft -f itself (fence, reading the table before and
    // after, hashes), per host: its share of the module's time.
    const safetyShare = moduleMs > 0 ? Math.max(0, moduleMs - nftOne) / moduleMs : 0;
    log('');
    log(
      table([
        ['way', `${s.hosts * s.rules} rules on the hosts`, 'API / this'],
        ['routeplane API (batch POSTs, wait)', ms(apiMs), '1.00x'],
        ['floor: bare ansible-playbook, nft -f - task', ms(floor.ms), ratio(apiMs / floor.ms)],
        ['physical limit: nft -f in each namespace', ms(physicalMs), ratio(apiMs / physicalMs)],
      ]),
    );
    log(
      `routeplane's module per host ${ms(moduleMs)} against nft -f alone ${ms(nftOne)}: the ` +
        `fence, the reads before and after and the hashes are ${(safetyShare * 100).toFixed(0)}% of it`,
    );
    log(`one rule / one route (API to the host) = ${ratio(ruleMs / routeMs)}`);
    return {
      name: NAME,
      rows: [
        {
          what: `${s.rules} rules x ${s.hosts} hosts: API vs the floor with Ansible (nft -f - task)`,
          subject: ms(apiMs),
          baseline: ms(floor.ms),
          ratio: apiMs / floor.ms,
        },
        {
          what: 'API vs nft -f in each namespace (physical limit)',
          subject: ms(apiMs),
          baseline: ms(physicalMs),
          ratio: apiMs / physicalMs,
        },
        {
          what: 'one rule vs one route, API to the host (median)',
          subject: ms(ruleMs),
          baseline: ms(routeMs),
          ratio: ruleMs / routeMs,
        },
      ],
    };
  });
}

if (isMain(import.meta.url)) runAsScript(firewallBulk);
