// Renderers: state in, DOM out. Every value shown is data (host names, kernel output, user
// comments, error text) and goes in through h()/textContent, never as markup.

import { badge, h, table, time } from './dom.js';
import {
  absenceReason,
  fullPrefix,
  LIVE_RUN_STATUSES,
  matchRoutes,
  reachabilityOf,
  splitHostObjects,
} from './model.js';

const SYNC_KIND = {
  in_sync: 'ok',
  applying: 'busy',
  failed: 'bad',
  conflict: 'bad',
  drifted: 'warn',
};
const STATUS_KIND = {
  active: 'ok',
  pending: 'info',
  paused: 'muted',
  expired: 'muted',
  deleted: 'muted',
};
const RUN_KIND = {
  queued: 'info',
  running: 'busy',
  succeeded: 'ok',
  failed: 'bad',
  error: 'bad',
  canceled: 'muted',
  timed_out: 'bad',
  interrupted: 'warn',
};
const REACH_KIND = { true: 'ok', false: 'bad', unknown: 'muted' };
const HOST_RESULT_KIND = {
  ok: 'ok',
  changed: 'busy',
  failed: 'bad',
  unreachable: 'bad',
  skipped: 'muted',
};

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
const dash = () => h('span', { class: 'muted' }, '—');
const orDash = (v) => (v === null || v === undefined || v === '' ? dash() : String(v));

function syncBadge(sync, testid) {
  if (!sync) return dash();
  const state = String(sync.state ?? 'unknown');
  return h(
    'span',
    { class: 'sync' },
    badge(state.replace('_', ' '), SYNC_KIND[state] ?? 'muted', {
      'data-testid': testid,
      'data-sync': state,
    }),
    sync.error
      ? h('span', { class: 'error-text', title: String(sync.error) }, String(sync.error))
      : null,
  );
}

function statusBadge(status, testid) {
  const s = String(status ?? 'unknown');
  return badge(s, STATUS_KIND[s] ?? 'muted', { 'data-testid': testid, 'data-status': s });
}

function schedule(obj) {
  if (!obj.create_at && !obj.delete_at) return dash();
  return h(
    'span',
    { class: 'schedule' },
    obj.create_at ? h('span', null, 'from ', time(obj.create_at, null, { seconds: false })) : null,
    obj.create_at && obj.delete_at ? h('br') : null,
    obj.delete_at ? h('span', null, 'until ', time(obj.delete_at, null, { seconds: false })) : null,
  );
}

// ---- host list ------------------------------------------------------------------------------

/** The list of hosts, each a button selecting it. */
export function hostList(names, hostObjectOf, selected, onSelect) {
  if (names.length === 0) {
    return [h('li', { class: 'muted empty', 'data-testid': 'hosts-empty' }, 'waiting for hosts…')];
  }
  return names.map((name) => {
    const host = hostObjectOf(name);
    const reach = reachabilityOf(host);
    return h(
      'li',
      null,
      h(
        'button',
        {
          type: 'button',
          class: `host-item reach-${reach.reachable}${name === selected ? ' selected' : ''}`,
          'data-testid': `host-${name}`,
          'data-reachable': reach.reachable,
          'data-watch': host?.watch?.state ?? 'unknown',
          'aria-current': name === selected ? 'true' : null,
          title: reach.error ? `${reach.label}: ${reach.error}` : reach.label,
          onclick: () => onSelect(name),
        },
        h('span', { class: `dot dot-${REACH_KIND[reach.reachable]}`, 'aria-hidden': 'true' }),
        h('span', { class: 'host-name' }, name),
        h('span', { class: 'host-reach', 'data-testid': `host-${name}-reach` }, reach.label),
        reach.error
          ? h('span', { class: 'host-error', 'data-testid': `host-${name}-error` }, reach.error)
          : null,
      ),
    );
  });
}

// ---- host detail ----------------------------------------------------------------------------

/**
 * The selected host: header, interfaces, kernel routes with their desired twins, desired
 * routes the kernel lacks, firewall. `ui` holds the collapsed sections and filters.
 */
export function hostDetail(name, topic, desiredRoutes, firewallRules, ui) {
  const parts = splitHostObjects(topic?.objects ? Object.fromEntries(topic.objects) : {});
  const host = parts.host;
  const reach = reachabilityOf(host);
  const stale = topic ? !topic.current : true;
  return h(
    'article',
    {
      class: `host-detail${stale ? ' stale' : ''}`,
      'data-testid': `host-detail-${name}`,
      'data-reachable': reach.reachable,
    },
    hostHeader(name, host, reach, stale),
    section(ui, 'interfaces', `Interfaces (${parts.links.length})`, interfaces(name, parts)),
    section(ui, 'routes', routesTitle(parts.routes), routes(name, parts, desiredRoutes, ui)),
    section(
      ui,
      'firewall',
      `Firewall (${plural(firewallRules.length, 'rule')})`,
      firewall(name, parts.firewall, firewallRules),
    ),
  );
}

function hostHeader(name, host, reach, stale) {
  const watch = host?.watch ?? {};
  return h(
    'header',
    { class: 'detail-header' },
    h('h2', null, name),
    h(
      'div',
      { class: 'badges' },
      badge(reach.label, REACH_KIND[reach.reachable], {
        'data-testid': 'detail-reach',
        'data-reachable': reach.reachable,
      }),
      (host?.groups ?? []).map((g) => badge(g, 'group')),
      host?.local ? badge('local', 'info') : null,
      host?.read_only ? badge('read-only', 'warn') : null,
      stale ? badge('not live', 'warn', { 'data-testid': 'detail-stale' }) : null,
    ),
    reach.error
      ? h('p', { class: 'error-text block', 'data-testid': 'detail-error' }, reach.error)
      : null,
    h('dl', { class: 'facts' }, facts(host, watch)),
    reach.reachable === 'false'
      ? h(
          'p',
          { class: 'muted note' },
          'Below: the state last read before the host became unreachable.',
        )
      : null,
  );
}

function facts(host, watch) {
  const out = [
    h('dt', null, 'watch'),
    h('dd', { 'data-testid': 'detail-watch' }, orDash(watch.state), watchSince(watch)),
  ];
  // Each shown when the server sends it.
  if (host?.last_seen_at) {
    out.push(h('dt', null, 'last seen'), h('dd', null, time(host.last_seen_at)));
  }
  if (host?.collected_at) {
    out.push(h('dt', null, 'state read'), h('dd', null, time(host.collected_at)));
  }
  return out;
}

function watchSince(watch) {
  const live = ['watching', 'unreachable', 'connecting'].includes(watch.state);
  return live && watch.since ? [' since ', time(watch.since)] : null;
}

function section(ui, id, title, body) {
  const details = h(
    'details',
    { class: 'section', 'data-section': id, open: !ui.collapsed.has(id) },
    h('summary', null, h('h3', null, title)),
    body,
  );
  details.addEventListener('toggle', () => {
    if (details.open) ui.collapsed.delete(id);
    else ui.collapsed.add(id);
  });
  return details;
}

function interfaces(host, parts) {
  if (parts.links.length === 0) return h('p', { class: 'muted' }, 'No interfaces read yet.');
  const byIf = new Map();
  for (const a of parts.addresses) {
    const list = byIf.get(a.ifname) ?? [];
    list.push(a);
    byIf.set(a.ifname, list);
  }
  const rows = parts.links.map((l) =>
    h(
      'tr',
      { 'data-testid': `iface-${host}-${l.ifname}`, 'data-state': String(l.state ?? '') },
      h('td', { class: 'mono' }, String(l.ifname)),
      h(
        'td',
        null,
        badge(orText(l.state), l.state === 'UP' ? 'ok' : l.state === 'DOWN' ? 'bad' : 'muted'),
      ),
      h('td', { class: 'mono' }, orDash(l.lladdr)),
      h('td', { class: 'num' }, orDash(l.mtu)),
      h(
        'td',
        { class: 'mono addresses' },
        (byIf.get(l.ifname) ?? []).map((a) =>
          h(
            'div',
            { 'data-testid': `addr-${host}-${a.address}/${a.prefixlen}` },
            `${a.address}/${a.prefixlen}`,
            a.scope && a.scope !== 'global' ? h('span', { class: 'muted' }, ` ${a.scope}`) : null,
          ),
        ),
      ),
    ),
  );
  return table(['Interface', 'State', 'MAC', 'MTU', 'Addresses'], rows, { class: 'grid' });
}

const orText = (v) => (v === null || v === undefined || v === '' ? '?' : String(v));

function routesTitle(kernelRoutes) {
  const managed = kernelRoutes.filter((r) => r.managed === true).length;
  return `Routes (${kernelRoutes.length} in the kernel, ${managed} managed)`;
}

function routes(host, parts, desiredRoutes, ui) {
  const known = parts.host?.collected_at != null || parts.routes.length > 0;
  const { kernel, unmatched } = matchRoutes(host, parts.routes, desiredRoutes);
  const shown = ui.managedOnly ? kernel.filter((k) => k.route.managed || k.desired) : kernel;
  const toggle = h(
    'label',
    { class: 'toggle' },
    h('input', {
      type: 'checkbox',
      'data-testid': 'managed-only',
      checked: ui.managedOnly,
      onchange: (ev) => ui.setManagedOnly(ev.target.checked),
    }),
    ' routeplane routes only',
  );
  const kernelTable = known
    ? table(
        [
          'Destination',
          'Next hop',
          'Proto',
          'Metric',
          'Table',
          'Owner',
          'Status',
          'Sync',
          'Schedule',
        ],
        shown.map((k) => kernelRouteRow(host, k.route, k.desired)),
        { class: 'grid', 'data-testid': `routes-${host}` },
      )
    : h('p', { class: 'muted' }, 'Kernel routes not read yet.');
  const missing =
    unmatched.length === 0
      ? null
      : h(
          'div',
          { class: 'subsection' },
          h('h4', null, `Desired, not in the kernel (${unmatched.length})`),
          table(
            [
              'Destination',
              'Next hop',
              'Metric',
              'Table',
              'Why',
              'Status',
              'Sync',
              'Schedule',
              'Comment',
            ],
            unmatched.map((d) => desiredRow(host, d, known)),
            { class: 'grid', 'data-testid': `desired-missing-${host}` },
          ),
        );
  return [h('div', { class: 'section-tools' }, toggle), kernelTable, missing];
}

/**
 * `via 192.0.2.1 dev eth0`, either part left out when absent; a multipath route's gateways
 * joined by commas.
 */
function nextHop(via, dev) {
  const gw = Array.isArray(via) ? via.join(', ') : via;
  const parts = [gw ? `via ${gw}` : null, dev ? `dev ${dev}` : null].filter(Boolean);
  return parts.length > 0 ? parts.join(' ') : dash();
}

function kernelRouteRow(host, r, desired) {
  const managed = r.managed === true;
  return h(
    'tr',
    {
      'data-testid': `route-${host}-${r.dst}`,
      'data-key': r.key,
      'data-managed': String(managed),
      'data-table': String(r.table ?? ''),
      'data-metric': String(r.metric ?? ''),
      'data-route-id': desired?.id ?? null,
      'data-status': desired?.status ?? null,
      'data-sync': desired?.sync?.state ?? null,
      class: managed ? 'managed' : null,
    },
    h(
      'td',
      { class: 'mono' },
      String(r.dst),
      r.type && r.type !== 'unicast' ? h('span', { class: 'muted' }, ` ${r.type}`) : null,
      desired?.comment
        ? h('div', { class: 'row-comment', 'data-testid': 'comment' }, String(desired.comment))
        : null,
    ),
    h(
      'td',
      { class: 'mono nowrap' },
      nextHop(r.nexthops ? r.nexthops.map((n) => n.gateway) : r.gateway, r.dev),
    ),
    h('td', null, orDash(r.protocol)),
    h('td', { class: 'num' }, orDash(r.metric)),
    h('td', null, orDash(r.table)),
    h(
      'td',
      null,
      managed
        ? badge('routeplane', 'managed', { 'data-testid': 'owner' })
        : badge('unmanaged', 'muted', { 'data-testid': 'owner' }),
    ),
    h('td', null, desired ? statusBadge(desired.status) : dash()),
    h('td', null, desired ? syncBadge(desired.sync) : dash()),
    h('td', null, desired ? schedule(desired) : dash()),
  );
}

function desiredRow(host, d, known) {
  const to = fullPrefix(d.to);
  const reason = absenceReason(d, known);
  return h(
    'tr',
    {
      'data-testid': `desired-${host}-${to}`,
      'data-route-id': d.id,
      'data-status': String(d.status ?? ''),
      'data-sync': String(d.sync?.state ?? ''),
      class: d.status === 'active' && known ? 'drifted' : null,
    },
    h('td', { class: 'mono' }, to),
    // A route with candidate gateways: the one (or, for ecmp, the set) in use now.
    h('td', { class: 'mono nowrap' }, nextHop(d.active_via ?? d.via, d.dev)),
    h('td', { class: 'num' }, orDash(d.metric)),
    h('td', null, orDash(d.table)),
    h('td', { 'data-testid': 'why' }, reason),
    h('td', null, statusBadge(d.status)),
    h('td', null, syncBadge(d.sync)),
    h('td', null, schedule(d)),
    h('td', { class: 'comment' }, orDash(d.comment)),
  );
}

function firewall(host, state, rules) {
  const summary = state
    ? h(
        'p',
        { class: 'fw-state', 'data-testid': `firewall-state-${host}` },
        state.available === false
          ? badge('nft not available', 'warn')
          : [
              state.table
                ? badge('table inet routeplane', 'ok')
                : badge('no routeplane table', 'muted'),
              ` ${plural(Number(state.rules ?? 0), 'rule')} in the kernel`,
            ],
        state.error ? h('span', { class: 'error-text block' }, String(state.error)) : null,
      )
    : h('p', { class: 'muted' }, 'Firewall not read yet.');
  if (rules.length === 0) {
    return [summary, h('p', { class: 'muted' }, 'No firewall rules for this host.')];
  }
  const rows = rules.map((r) =>
    h(
      'tr',
      {
        'data-testid': `fwrule-${r.id}`,
        'data-status': String(r.status ?? ''),
        'data-sync': String(r.sync?.state ?? ''),
      },
      h('td', null, orDash(r.chain)),
      h('td', { class: 'mono' }, ruleMatch(r)),
      h(
        'td',
        null,
        badge(
          orText(r.action),
          r.action === 'accept'
            ? 'ok'
            : r.action === 'drop' || r.action === 'reject'
              ? 'bad'
              : 'info',
        ),
        r.to
          ? h('span', { class: 'mono' }, ` ${r.to.address}${r.to.port ? `:${r.to.port}` : ''}`)
          : null,
      ),
      h('td', { class: 'num' }, orDash(r.priority)),
      h('td', null, statusBadge(r.status)),
      h('td', null, syncBadge(r.sync)),
      h('td', null, schedule(r)),
      h('td', { class: 'comment' }, orDash(r.comment)),
    ),
  );
  return [
    summary,
    table(['Chain', 'Match', 'Action', 'Prio', 'Status', 'Sync', 'Schedule', 'Comment'], rows, {
      class: 'grid',
      'data-testid': `firewall-rules-${host}`,
    }),
  ];
}

function ruleMatch(r) {
  const list = (v) => (Array.isArray(v) && v.length > 0 ? v.join(',') : null);
  const parts = [
    r.family && r.family !== 'inet' ? r.family : null,
    r.protocol && r.protocol !== 'any' ? r.protocol : null,
    list(r.src) ? `from ${list(r.src)}` : null,
    list(r.sport) ? `sport ${list(r.sport)}` : null,
    list(r.dst) ? `to ${list(r.dst)}` : null,
    list(r.dport) ? `dport ${list(r.dport)}` : null,
    r.iif ? `iif ${r.iif}` : null,
    r.oif ? `oif ${r.oif}` : null,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(' ') : 'any';
}

// ---- runs ------------------------------------------------------------------------------------

/** The latest runs; a live one shows its per-host progress from its `runs/<id>` topic. */
export function runsList(runs, runTopicOf) {
  if (runs.length === 0) return [h('li', { class: 'muted empty' }, 'No runs yet.')];
  return runs.map((run) => {
    const live = LIVE_RUN_STATUSES.has(run.status);
    const topic = live ? runTopicOf(run.id) : null;
    const status = String(run.status ?? 'unknown');
    return h(
      'li',
      { class: `run run-${status}`, 'data-testid': `run-${run.id}`, 'data-status': status },
      h(
        'div',
        { class: 'run-head' },
        badge(status.replace('_', ' '), RUN_KIND[status] ?? 'muted'),
        h('span', { class: 'run-kind' }, String(run.kind ?? '')),
        run.playbook && run.playbook !== run.kind
          ? h('span', { class: 'run-playbook mono' }, String(run.playbook))
          : null,
        h('span', { class: 'run-id mono', title: String(run.id) }, String(run.id).slice(0, 8)),
      ),
      h(
        'div',
        { class: 'run-meta muted' },
        time(run.created_at),
        run.requested_by ? ` by ${run.requested_by}` : null,
        run.finished_at && run.started_at
          ? ` · ${duration(run.started_at, run.finished_at)}`
          : null,
      ),
      live && topic ? runProgress(run, topic) : runSummary(run),
      run.error ? h('div', { class: 'error-text block' }, String(run.error)) : null,
    );
  });
}

function duration(from, to) {
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (!Number.isFinite(ms) || ms < 0) return '';
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function runSummary(run) {
  const hosts = Array.isArray(run.hosts) ? run.hosts : [];
  const summary = run.summary && typeof run.summary === 'object' ? run.summary : {};
  if (hosts.length === 0 && Object.keys(summary).length === 0) return null;
  const names = [...new Set([...hosts, ...Object.keys(summary)])];
  return h(
    'ul',
    { class: 'run-hosts' },
    names.map((name) => {
      const s = summary[name];
      const st = s?.status ?? 'pending';
      return h(
        'li',
        { 'data-testid': `run-${run.id}-host-${name}`, 'data-status': st, title: s?.msg ?? null },
        badge(`${name}: ${st}`, HOST_RESULT_KIND[st] ?? 'muted'),
      );
    }),
  );
}

function runProgress(run, topic) {
  const objects = Object.fromEntries(topic.objects);
  const hosts = Object.entries(objects)
    .filter(([k]) => k.startsWith('host/'))
    .map(([, v]) => v)
    .sort((a, b) => String(a.host).localeCompare(String(b.host), 'en', { numeric: true }));
  const lastTask = [...topic.events].reverse().find((e) => e.kind === 'task_started');
  const recent = topic.events
    .filter((e) => e.kind === 'host_result')
    .slice(-5)
    .reverse();
  return h(
    'div',
    { class: 'run-progress', 'data-testid': `run-progress-${run.id}` },
    lastTask
      ? h('div', { class: 'run-task' }, 'task: ', h('strong', null, String(lastTask.task ?? '')))
      : null,
    hosts.length
      ? table(
          ['Host', 'ok', 'chg', 'fail', 'unr', 'skip', 'Task'],
          hosts.map((p) =>
            h(
              'tr',
              { 'data-testid': `run-${run.id}-progress-${p.host}` },
              h('td', null, String(p.host)),
              h('td', { class: 'num' }, String(p.ok ?? 0)),
              h('td', { class: 'num' }, String(p.changed ?? 0)),
              h('td', { class: `num${p.failed ? ' bad' : ''}` }, String(p.failed ?? 0)),
              h('td', { class: `num${p.unreachable ? ' bad' : ''}` }, String(p.unreachable ?? 0)),
              h('td', { class: 'num' }, String(p.skipped ?? 0)),
              h('td', { class: 'ellipsis' }, orDash(p.last_task)),
            ),
          ),
          { class: 'grid compact progress' },
        )
      : runSummary(run),
    recent.length
      ? h(
          'ul',
          { class: 'run-events' },
          recent.map((e) =>
            h(
              'li',
              null,
              badge(orText(e.status), HOST_RESULT_KIND[e.status] ?? 'muted'),
              ` ${e.host ?? ''} · ${e.task ?? ''}`,
              e.msg ? h('span', { class: 'error-text' }, ` ${e.msg}`) : null,
            ),
          ),
        )
      : null,
  );
}
