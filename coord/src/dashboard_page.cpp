// The dashboard of `drover serve`: one static page, inline CSS and vanilla JS, that polls the
// same JSON API any client uses (/api/runs, /api/runs/ID, /api/workers) and loads nothing else.
// API strings reach the DOM only as text nodes and attribute values, never as markup.
#include "dashboard_page.hpp"

namespace drover::coord::detail {

std::string_view dashboard_page() noexcept {
  static constexpr std::string_view page = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>drover</title>
<style>
:root { --fg: #1f2328; --muted: #656d76; --line: #d8dee4; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: baseline; gap: 18px; padding: 10px 20px;
  border-bottom: 1px solid var(--line); background: var(--soft); }
header h1 { margin: 0; font-size: 20px; letter-spacing: .5px; }
#queue, .muted { color: var(--muted); }
.muted { font-size: 12px; }
#banner { display: none; margin: 10px 20px 0; padding: 8px 12px; border-radius: 6px;
  border: 1px solid #e8a3a3; background: #fdecec; color: #86181d; white-space: pre-wrap; }
#banner.shown { display: block; }
main { display: grid; grid-template-columns: 290px minmax(0, 1fr); gap: 22px;
  padding: 16px 20px; }
section { margin-bottom: 26px; }
h2 { margin: 0 0 8px; font-size: 15px; }
h3 { margin: 10px 0 4px; font-size: 14px; }
#runs { list-style: none; margin: 0; padding: 0; max-height: 85vh; overflow: auto; }
#runs li { margin-bottom: 6px; padding: 7px 10px; border: 1px solid var(--line);
  border-radius: 6px; cursor: pointer; }
#runs li:hover { background: var(--soft); }
#runs li.selected { border-color: #0969da; box-shadow: inset 0 0 0 1px #0969da; }
#runs li.empty { cursor: default; color: var(--muted); }
.run-name { font-weight: 600; margin-right: 6px; word-break: break-all; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px;
  background: var(--c); color: var(--t); }
#dag { max-height: 70vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px;
  background: #fcfcfd; }
#dag svg { display: block; }
#dag .empty { padding: 12px; color: var(--muted); }
.edge { fill: none; stroke: #9aa4ae; stroke-width: 1.2; }
.module { cursor: pointer; }
.module rect { fill: var(--c); stroke: rgba(0, 0, 0, .22); }
.module text { fill: var(--t); font-size: 12px; dominant-baseline: central; }
table { width: 100%; border-collapse: collapse; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
tr.flash td { background: #fff8c5; }
td.num { font-variant-numeric: tabular-nums; }
pre { margin: 4px 0 12px; padding: 8px 10px; max-height: 320px; overflow: auto;
  white-space: pre-wrap; word-break: break-word; background: var(--soft);
  border: 1px solid var(--line); border-radius: 6px; font-size: 12px; }
.bar { display: inline-block; width: 60px; height: 8px; margin-right: 6px;
  background: #e6e9ed; border-radius: 4px; overflow: hidden; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #2f6fdb; }
[class*="status-"] { --c: #d0d4da; --t: #1f2328; }
.status-ready { --c: #bfdcff; }
.status-running { --c: #2f6fdb; --t: #fff; }
.status-succeeded { --c: #2da44e; --t: #fff; }
.status-failed, .status-timed_out { --c: #cf222e; --t: #fff; }
.status-cancelled { --c: #f0883e; }
.status-skipped { --c: #eceef1; --t: #656d76; }
.status-ignored_failure { --c: #f2cc3b; }
.status-cached { --c: #1b9aaa; --t: #fff; }
</style>
</head>
<body>
<header><h1>drover</h1><span id="queue">connecting…</span></header>
<div id="banner" role="alert"></div>
<main>
  <section><h2>Runs</h2><ul id="runs"></ul></section>
  <div>
    <section id="run-head"><h2>No run selected</h2></section>
    <section><div id="dag"></div></section>
    <section><h2>Modules</h2><table><thead><tr><th>Module</th><th>Status</th>
      <th>Attempts</th><th>Worker</th></tr></thead><tbody id="modules"></tbody></table></section>
    <section><h2>Failed modules</h2><div id="failed"></div></section>
    <section><h2>Workers</h2><table><thead><tr><th>Name</th><th>Kind</th>
      <th>Capabilities</th><th>Busy</th><th>Utilisation</th><th>Current attempts</th>
      </tr></thead><tbody id="workers"></tbody></table></section>
  </div>
</main>
<script>
'use strict';
const SVG_NS = 'http://www.w3.org/2000/svg';
const POLL_MS = 1000;
const NODE_W = 150, NODE_H = 28, COL_GAP = 60, ROW_GAP = 12, PAD = 14;
const COUNT_ORDER = ['succeeded', 'cached', 'failed', 'timed_out', 'ignored_failure',
  'cancelled', 'skipped', 'running', 'ready', 'pending'];
const $ = (id) => document.getElementById(id);
const shown = {};  // section -> JSON of what it shows, so an unchanged poll leaves the DOM alone
let fragment = readFragment();
let rowById = new Map();
let shownRunId = null;

function readFragment() {
  const p = new URLSearchParams(location.hash.slice(1));
  return {token: p.get('token'), run: p.get('run')};
}

// Strings passed as children become text nodes (Element.append), never markup.
function make(ns, tag, attrs, children) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}
const el = (tag, attrs, ...children) => make(null, tag, attrs, children);
const svg = (tag, attrs, ...children) => make(SVG_NS, tag, attrs, children);
const badge = (status) => el('span', {class: 'badge status-' + status}, status);

function changed(key, value) {
  const s = JSON.stringify(value);
  if (shown[key] === s) return false;
  shown[key] = s;
  return true;
}

function time(s) {
  if (!s) return '—';
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

async function getJson(path) {
  const headers = {Accept: 'application/json'};
  if (fragment.token) headers.Authorization = 'Bearer ' + fragment.token;
  let res;
  try {
    res = await fetch(path, {headers, cache: 'no-store'});
  } catch (e) {
    throw new Error(`GET ${path}: ${e.message}`);
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* reported below */ }
  if (!res.ok) {
    const why = body && typeof body.error === 'string' ? body.error : res.statusText;
    throw new Error(`GET ${path}: ${res.status} ${why}`);
  }
  if (body === null) throw new Error(`GET ${path}: the response is not JSON`);
  return body;
}

function countsSummary(r) {
  const c = r.counts || {};
  const parts = COUNT_ORDER.filter((k) => c[k]).map((k) => `${c[k]} ${k.replace('_', ' ')}`);
  return `${r.total} modules` + (parts.length ? ': ' + parts.join(', ') : '');
}

function renderQueue(q) {
  if (!q) return;
  $('queue').textContent = `${q.queued_runs} queued (max ${q.max_queued_runs}) · ` +
      `${q.running_runs} running · ${q.waiting_modules} modules waiting ` +
      `(max ${q.max_waiting_modules})`;
}

function renderRuns(runs, selected) {
  if (!changed('runs', [runs, selected])) return;
  const items = runs.slice().reverse().map((r) => {
    const li = el('li', {class: r.run === selected ? 'selected' : ''},
        el('div', {}, el('span', {class: 'run-name'}, r.name || r.run), badge(r.status)),
        el('div', {class: 'muted'}, `${r.run} · submitted ${time(r.submitted_at)}`),
        el('div', {class: 'muted'}, countsSummary(r)));
    li.addEventListener('click', () => select(r.run));
    return li;
  });
  if (!items.length) items.push(el('li', {class: 'empty'}, 'No runs yet: POST /api/runs.'));
  $('runs').replaceChildren(...items);
}

function select(id) {
  const p = new URLSearchParams();
  if (fragment.token) p.set('token', fragment.token);
  p.set('run', id);
  location.hash = p.toString();
}

// Levels by Kahn's algorithm, O(modules + edges); unknown deps are ignored and modules on a
// cycle (which the engine rejects anyway) keep the level they reached.
function layout(modules) {
  const n = modules.length;
  const index = new Map(modules.map((m, i) => [m.id, i]));
  const deps = modules.map((m) => (m.deps || []).map((d) => index.get(d))
      .filter((j) => j !== undefined));
  const users = modules.map(() => []);
  const waiting = deps.map((ds) => ds.length);
  deps.forEach((ds, i) => ds.forEach((j) => users[j].push(i)));
  const level = new Array(n).fill(0);
  const order = [];
  for (let i = 0; i < n; i++) if (!waiting[i]) order.push(i);
  for (let q = 0; q < order.length; q++) {
    const j = order[q];
    for (const i of users[j]) {
      level[i] = Math.max(level[i], level[j] + 1);
      if (--waiting[i] === 0) order.push(i);
    }
  }
  const columns = [];
  level.forEach((l, i) => (columns[l] ||= []).push(i));
  for (let c = 0; c < columns.length; c++) columns[c] ||= [];
  // Within a column, order by the mean row of the deps (one barycentre pass) to cut crossings.
  const row = new Array(n).fill(0);
  columns.forEach((col, c) => {
    if (c > 0) {
      const key = new Map(col.map((i) => [i, deps[i].length
          ? deps[i].reduce((s, j) => s + row[j], 0) / deps[i].length : 0]));
      col.sort((a, b) => key.get(a) - key.get(b) || a - b);
    }
    col.forEach((i, r) => { row[i] = r; });
  });
  const rows = Math.max(1, ...columns.map((col) => col.length));
  // Short columns are centred while the graph fits a screen; a tall one would start off-screen.
  const centre = rows <= 16;
  const pos = new Array(n);
  columns.forEach((col, c) => col.forEach((i) => {
    const r = row[i] + (centre ? (rows - col.length) / 2 : 0);
    pos[i] = {x: PAD + c * (NODE_W + COL_GAP), y: PAD + r * (NODE_H + ROW_GAP)};
  }));
  return {deps, pos, width: 2 * PAD + columns.length * (NODE_W + COL_GAP) - COL_GAP,
    height: 2 * PAD + rows * (NODE_H + ROW_GAP) - ROW_GAP};
}

function renderDag(modules) {
  if (!modules.length) {
    $('dag').replaceChildren(el('div', {class: 'empty'}, 'No modules.'));
    return;
  }
  const {deps, pos, width, height} = layout(modules);
  const edges = svg('g', {class: 'edges'});
  const nodes = svg('g', {class: 'modules'});
  modules.forEach((m, i) => {
    const to = pos[i], ty = to.y + NODE_H / 2;
    for (const j of deps[i]) {
      const from = pos[j], fx = from.x + NODE_W, fy = from.y + NODE_H / 2;
      const mx = (fx + to.x) / 2;
      edges.append(svg('path', {class: 'edge',
        d: `M${fx},${fy} C${mx},${fy} ${mx},${ty} ${to.x},${ty}`}));
    }
    const label = m.id.length > 20 ? m.id.slice(0, 19) + '…' : m.id;
    const g = svg('g', {class: 'module status-' + m.status, 'data-id': m.id,
      transform: `translate(${to.x},${to.y})`},
        svg('title', {}, `${m.id}\nstatus: ${m.status}\nattempts: ${m.attempts}\n` +
            `worker: ${m.worker || '—'}`),
        svg('rect', {width: NODE_W, height: NODE_H, rx: 6, ry: 6}),
        svg('text', {x: 9, y: NODE_H / 2}, label));
    g.addEventListener('click', () => showRow(m.id));
    nodes.append(g);
  });
  $('dag').replaceChildren(svg('svg', {width, height, viewBox: `0 0 ${width} ${height}`,
    role: 'img', 'aria-label': 'module graph'}, edges, nodes));
}

function showRow(id) {
  const tr = rowById.get(id);
  if (!tr) return;
  tr.scrollIntoView({block: 'center', behavior: 'smooth'});
  tr.classList.add('flash');
  setTimeout(() => tr.classList.remove('flash'), 1500);
}

function renderRun(run, id) {
  shownRunId = id;
  if (!changed('run', [run, id])) return;
  const head = $('run-head');
  if (!run) {
    head.replaceChildren(el('h2', {}, id ? `Run ${id} could not be loaded` : 'No run selected'));
    document.title = 'drover';
  } else {
    document.title = `drover · ${run.name || run.run} · ${run.status}`;
    head.replaceChildren(
        el('h2', {}, el('span', {class: 'run-name'}, run.name || run.run), badge(run.status)),
        el('div', {class: 'muted'}, `${run.run} · submitted ${time(run.submitted_at)} · ` +
            `started ${time(run.started_at)} · finished ${time(run.finished_at)}`),
        el('div', {class: 'muted'}, countsSummary(run)));
  }
  const modules = (run && run.modules) || [];
  renderDag(modules);
  rowById = new Map();
  $('modules').replaceChildren(...modules.map((m) => {
    const tr = el('tr', {}, el('td', {}, m.id), el('td', {}, badge(m.status)),
        el('td', {class: 'num'}, String(m.attempts)), el('td', {}, m.worker || '—'));
    rowById.set(m.id, tr);
    return tr;
  }));
  const failed = modules.filter((m) => m.status === 'failed' || m.status === 'timed_out');
  $('failed').replaceChildren(...(failed.length ? failed.flatMap((m) => [
    el('h3', {}, el('span', {class: 'run-name'}, m.id), badge(m.status)),
    el('pre', {}, m.reason || '(no reason given)')]) : [el('div', {class: 'muted'}, 'None.')]));
}

function renderWorkers(workers) {
  if (!changed('workers', workers)) return;
  const rows = workers.map((w) => {
    const pct = Math.round((w.utilisation || 0) * 100);
    const bar = el('span', {class: 'bar'}, el('span', {style: `width:${pct}%`}));
    const attempts = (w.attempts || []).map((a) => el('div', {},
        `${a.module} #${a.attempt} `, el('span', {class: 'muted'}, a.run)));
    return el('tr', {}, el('td', {}, w.name), el('td', {}, w.kind),
        el('td', {}, (w.capabilities || []).join(', ') || '—'),
        el('td', {class: 'num'}, `${w.busy}/${w.slots}`),
        el('td', {class: 'num'}, bar, `${pct}%`),
        el('td', {}, ...(attempts.length ? attempts : ['—'])));
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: 6, class: 'muted'}, 'None.')));
  $('workers').replaceChildren(...rows);
}

function showErrors(errors) {
  const banner = $('banner');
  banner.textContent = errors.join('\n');
  banner.classList.toggle('shown', errors.length > 0);
}

async function poll() {
  const errors = [];
  const failed = (e) => { errors.push(e.message); return null; };
  const [runs, workers] = await Promise.all(
      [getJson('/api/runs').catch(failed), getJson('/api/workers').catch(failed)]);
  const list = (runs && runs.runs) || [];
  const id = fragment.run || (list.length ? list[list.length - 1].run : null);
  if (runs) {
    renderQueue(runs.queue);
    renderRuns(list, id);
  }
  if (id) {
    const run = await getJson('/api/runs/' + encodeURIComponent(id)).catch(failed);
    // On an error keep showing the run if it is the one selected; the banner says why.
    if (run || shownRunId !== id) renderRun(run, id);
  } else if (runs) {
    renderRun(null, null);
  }
  if (workers) renderWorkers(workers.workers || []);
  showErrors(errors);
}

// One poll at a time: a selection made during a poll runs the next one as soon as it ends.
let timer = null, polling = false, again = false;
async function tick() {
  if (polling) { again = true; return; }
  polling = true;
  clearTimeout(timer);
  try {
    await poll();
  } catch (e) {
    showErrors([e.message]);
  } finally {
    polling = false;
    if (again) {
      again = false;
      tick();
    } else {
      timer = setTimeout(tick, POLL_MS);
    }
  }
}

window.addEventListener('hashchange', () => { fragment = readFragment(); tick(); });
tick();
</script>
</body>
</html>
)html";
  return page;
}

}  // namespace drover::coord::detail
