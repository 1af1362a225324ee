/* global document */
// Building DOM from data without markup: text goes in as text nodes, values as attributes set
// one by one. No innerHTML anywhere in the dashboard.

/**
 * h('td', { class: 'x', 'data-testid': id, onclick: fn }, 'text', child, [more]) makes an
 * element; a null, undefined or false prop or child is left out.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = String(value);
    else if (name === 'text') el.textContent = String(value);
    else if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (typeof child === 'object' && 'nodeType' in child) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's children, keeping focus on an element with the same data-testid. */
export function replaceChildren(el, ...children) {
  const active = document.activeElement;
  const focusedId = active && el.contains(active) ? active.getAttribute('data-testid') : null;
  el.replaceChildren();
  append(el, children);
  if (focusedId) {
    for (const candidate of el.querySelectorAll('[data-testid]')) {
      if (candidate.getAttribute('data-testid') === focusedId) {
        candidate.focus();
        break;
      }
    }
  }
}

/** A timestamp for people: local time, with the ISO value as a tooltip. */
export function time(iso, testid, { seconds = true } = {}) {
  if (!iso) return h('span', { class: 'muted', 'data-testid': testid }, '—');
  const d = new Date(iso);
  const text = Number.isNaN(d.getTime()) ? String(iso) : formatLocal(d, seconds);
  return h('time', { datetime: String(iso), title: String(iso), 'data-testid': testid }, text);
}

function formatLocal(d, seconds) {
  const pad = (n) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`
  );
}

/** A small coloured label: `kind` picks the colour (a CSS class), text is data. */
export function badge(text, kind, props = {}) {
  return h('span', { ...props, class: `badge badge-${kind}` }, String(text));
}

/** A table with a header row, scrolling sideways when too wide; rows are <tr> elements. */
export function table(headers, rows, props = {}) {
  const head = h(
    'tr',
    null,
    headers.map((t) => h('th', { scope: 'col' }, t)),
  );
  return h(
    'div',
    { class: 'table-wrap' },
    h('table', props, h('thead', null, head), h('tbody', null, rows)),
  );
}
