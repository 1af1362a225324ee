/* global document, window, location, history, requestAnimationFrame */
// The routeplane dashboard: asks for an API token once per tab, then follows the hosts,
// routes, firewall rules and runs over one WebSocket. Everything shown comes from it.

import { Connection } from './connection.js';
import { h, replaceChildren } from './dom.js';
import { LiveState } from './live-state.js';
import {
  BASE_TOPICS,
  HOST_TOPIC_PREFIX,
  hostNames,
  LIVE_RUN_STATUSES,
  routesByHost,
  rulesOfHost,
  RUN_TOPIC_PREFIX,
  sortRuns,
} from './model.js';
import { hostDetail, hostList, runsList } from './views.js';

const TOKEN_KEY = 'routeplane.token';
const MAX_RUNS_SHOWN = 20;
const MAX_RUNS_FOLLOWED = 10;

// The API's root: the dashboard lives at <root>/ui/, so this works behind a path prefix too.
const API_BASE = new URL('../', location.href);

const $ = (id) => document.getElementById(id);
const els = {
  login: $('login'),
  loginForm: $('login-form'),
  tokenInput: $('token-input'),
  loginError: $('login-error'),
  dashboard: $('dashboard'),
  hostList: $('host-list'),
  detail: $('host-detail'),
  runs: $('run-list'),
  conn: $('conn-status'),
  forget: $('forget-token'),
  problems: $('problems'),
};

const ui = {
  selected: selectedFromHash(),
  collapsed: new Set(),
  managedOnly: false,
  setManagedOnly(v) {
    ui.managedOnly = v;
    dirty.detail = true;
    schedule();
  },
};

let live = new LiveState();
let conn = null;
/** The `runs/<id>` topics subscribed to (runs still queued or running). */
let runTopics = new Set();
let status = { state: 'idle' };
const dirty = { hosts: true, detail: true, runs: true, status: true };
let frame = null;

// ---- token and login ------------------------------------------------------------------------

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token lasts as long as the page
  }
}

function showLogin(message) {
  stopConnection();
  resetState();
  els.dashboard.hidden = true;
  els.forget.hidden = true;
  els.login.hidden = false;
  els.loginError.textContent = message ?? '';
  els.loginError.hidden = !message;
  els.tokenInput.value = '';
  els.tokenInput.focus();
  setStatus({ state: 'idle' });
}

function showDashboard() {
  els.login.hidden = true;
  els.dashboard.hidden = false;
  els.forget.hidden = false;
}

els.loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = els.tokenInput.value.trim();
  if (!token) {
    els.loginError.textContent = 'Enter an API token.';
    els.loginError.hidden = false;
    return;
  }
  els.loginError.hidden = true;
  start(token, { fresh: true });
});

els.forget.addEventListener('click', () => {
  storeToken(null);
  showLogin('Token forgotten.');
});

/** Drop everything held: what the next token may read starts from nothing. */
function resetState() {
  live = new LiveState();
  runTopics = new Set();
  markAllDirty();
}

// ---- the connection -------------------------------------------------------------------------

function stopConnection() {
  if (conn) conn.stop();
  conn = null;
}

/** Connect with a token; a fresh one (typed in) is kept only once the API accepts it. */
function start(token, { fresh }) {
  stopConnection();
  if (!fresh) showDashboard();
  const c = new Connection({
    apiBase: API_BASE,
    token,
    onOpen: (send) => {
      if (conn !== c) return;
      if (fresh) storeToken(token);
      showDashboard();
      live.markStale();
      live.errors.clear();
      const topics = [...BASE_TOPICS, ...runTopics];
      const since = sinceFor(topics);
      const msg = { type: 'subscribe', topics };
      if (Object.keys(since).length > 0) msg.since = since;
      send(msg);
      markAllDirty();
    },
    onMessage: (msg) => {
      if (conn !== c) return;
      onMessage(msg);
    },
    onStatus: (s) => {
      if (conn !== c) return;
      if (fresh && s.state === 'waiting' && els.dashboard.hidden) {
        // A typed-in token that could not be checked yet: say why, and keep trying.
        els.loginError.textContent = `Cannot check the token yet: ${s.detail}`;
        els.loginError.hidden = false;
      }
      setStatus(s);
    },
    onUnauthorized: (detail) => {
      if (conn !== c) return;
      storeToken(null);
      showLogin(`The API refused the token: ${detail}`);
    },
  });
  conn = c;
  c.start();
}

function onMessage(msg) {
  const topic = live.apply(msg);
  if (topic === null) return;
  if (msg.type === 'error') {
    if (msg.code === 'unknown_topic' && topic.startsWith(RUN_TOPIC_PREFIX)) {
      // A run that is gone (pruned) has no progress to follow.
      runTopics.delete(topic);
      live.drop(topic);
    }
    dirty.status = true;
  }
  if (topic === 'runs') followLiveRuns();
  if (topic.startsWith(HOST_TOPIC_PREFIX) || topic === 'hosts/*') {
    dirty.hosts = true;
    if (topic === HOST_TOPIC_PREFIX + currentHost()) dirty.detail = true;
    // The first host to arrive becomes the selection when none was asked for.
    if (ui.selected === null) dirty.detail = true;
  }
  if (topic === 'routes' || topic === 'firewall') dirty.detail = true;
  if (topic === 'runs' || topic.startsWith(RUN_TOPIC_PREFIX)) dirty.runs = true;
  schedule();
}

/** The last seq held for each topic being subscribed to (`hosts/*` covers every host topic). */
function sinceFor(topics) {
  const wanted = new Set(topics);
  const out = {};
  for (const [topic, seq] of Object.entries(live.since())) {
    if (wanted.has(topic) || topic.startsWith(HOST_TOPIC_PREFIX)) out[topic] = seq;
  }
  return out;
}

/** Subscribe to the progress of runs that are queued or running; let go of finished ones. */
function followLiveRuns() {
  const wanted = new Set(
    sortRuns(live.objects('runs'))
      .filter((r) => LIVE_RUN_STATUSES.has(r.status))
      .slice(0, MAX_RUNS_FOLLOWED)
      .map((r) => RUN_TOPIC_PREFIX + r.id),
  );
  const add = [...wanted].filter((t) => !runTopics.has(t));
  const remove = [...runTopics].filter((t) => !wanted.has(t));
  for (const t of add) runTopics.add(t);
  for (const t of remove) {
    runTopics.delete(t);
    live.drop(t);
  }
  if (!conn) return;
  if (add.length > 0) conn.send({ type: 'subscribe', topics: add });
  if (remove.length > 0) conn.send({ type: 'unsubscribe', topics: remove });
}

// ---- rendering ------------------------------------------------------------------------------

function markAllDirty() {
  dirty.hosts = dirty.detail = dirty.runs = dirty.status = true;
  schedule();
}

function schedule() {
  if (frame !== null) return;
  frame = requestAnimationFrame(() => {
    frame = null;
    render();
  });
}

function setStatus(s) {
  status = s;
  dirty.status = true;
  schedule();
}

function currentNames() {
  return hostNames([...live.topics.keys()]);
}

/** The host shown: the one asked for (URL hash), else the first one. */
function currentHost() {
  if (ui.selected !== null) return ui.selected;
  return currentNames()[0] ?? null;
}

function selectHost(name) {
  ui.selected = name;
  const hash = `#host=${encodeURIComponent(name)}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  dirty.hosts = dirty.detail = true;
  schedule();
}

function selectedFromHash() {
  const m = /^#host=(.+)$/.exec(location.hash);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

window.addEventListener('hashchange', () => {
  ui.selected = selectedFromHash();
  dirty.hosts = dirty.detail = true;
  schedule();
});

function render() {
  if (dirty.status) renderStatus();
  if (dirty.hosts) {
    const names = currentNames();
    replaceChildren(
      els.hostList,
      hostList(
        names,
        (n) => live.topics.get(HOST_TOPIC_PREFIX + n)?.objects.get('host'),
        currentHost(),
        selectHost,
      ),
    );
  }
  if (dirty.detail) renderDetail();
  if (dirty.runs) {
    const runs = sortRuns(live.objects('runs')).slice(0, MAX_RUNS_SHOWN);
    replaceChildren(
      els.runs,
      runsList(runs, (id) => live.topics.get(RUN_TOPIC_PREFIX + id)),
    );
  }
  dirty.hosts = dirty.detail = dirty.runs = dirty.status = false;
}

function renderDetail() {
  const name = currentHost();
  if (name === null) {
    replaceChildren(els.detail, h('p', { class: 'muted' }, 'Waiting for hosts…'));
    return;
  }
  const topic = live.topics.get(HOST_TOPIC_PREFIX + name);
  if (!topic) {
    replaceChildren(
      els.detail,
      h(
        'p',
        { class: 'muted', 'data-testid': 'no-such-host' },
        `No state for a host named ${name}.`,
      ),
    );
    return;
  }
  const desired = routesByHost(live.objects('routes')).get(name) ?? [];
  const rules = rulesOfHost(live.objects('firewall'), name);
  replaceChildren(els.detail, hostDetail(name, topic, desired, rules, ui));
}

function renderStatus() {
  const labels = {
    idle: 'not connected',
    connecting: 'connecting…',
    open: 'live',
    waiting: 'reconnecting',
  };
  els.conn.dataset.state = status.state;
  els.conn.textContent = labels[status.state] ?? status.state;
  els.conn.title = status.detail ?? '';
  const problems = [];
  if (status.state === 'waiting' && status.detail) {
    problems.push(h('li', { 'data-testid': 'conn-problem' }, status.detail));
  }
  for (const [topic, err] of live.errors) {
    problems.push(
      h(
        'li',
        { 'data-testid': 'topic-error', 'data-code': err.code },
        topic ? `${topic}: ` : '',
        `${err.code}${err.detail ? ` — ${err.detail}` : ''}`,
      ),
    );
  }
  replaceChildren(els.problems, problems);
  els.problems.hidden = problems.length === 0;
}

// ---- start ----------------------------------------------------------------------------------

const saved = storedToken();
if (saved) start(saved, { fresh: false });
else showLogin();
