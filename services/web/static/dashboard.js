// The runlog dashboard: reads /api/<page> and /healthz, renders, and refreshes every 2 s.
// Plain DOM, no build step. Every value is set as text, never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const PALETTE = ["#0969da", "#1a7f37", "#bf8700", "#8250df", "#cf222e", "#1b7c83",
                 "#9a6700", "#bc4c00", "#6e7781", "#2da44e"];
const STATE_COLUMNS = new Set(["state", "status", "to_state", "from_state"]);
const TASK_STATES = ["", "queued", "pending", "blocked", "leased", "running", "retry_wait",
                     "succeeded", "failed", "cancelled"];

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    // Through the CSSOM: the page's CSP refuses style attributes, as it should.
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) node.append(child);
  return node;
}

function badge(state) {
  const text = state === null || state === undefined ? "—" : String(state);
  return h("span", {class: `badge s-${text}`}, text);
}

function formatCell(column, value) {
  if (value === null || value === undefined) return h("span", {class: "muted"}, "—");
  if (STATE_COLUMNS.has(column)) return badge(value);
  if (column === "run_id") return h("a", {href: `#/runs/${encodeURIComponent(value)}`}, value);
  if (column === "trace_id" || column === "span_id") return h("span", {class: "trace"}, value);
  if (column === "used") return usedBar(value);
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) {
    return new Date(value).toLocaleString();
  }
  return value;
}

function usedBar(ratio) {
  const share = Math.max(0, Math.min(1, Number(ratio)));
  return h("span", {},
    h("span", {class: share >= 1 ? "bar full" : "bar"},
      h("span", {style: {width: `${(share * 100).toFixed(1)}%`}})),
    ` ${(Number(ratio) * 100).toFixed(1)}%`);
}

function table(rows, options = {}) {
  if (!rows || rows.length === 0) return h("p", {class: "muted"}, options.empty || "Nothing yet.");
  const columns = Object.keys(rows[0]);
  return h("table", {"data-rows": rows.length},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((row) => h("tr", {},
      columns.map((c) => h("td", {class: typeof row[c] === "number" ? "num" : null, "data-column": c},
        formatCell(c, row[c])))))));
}

function stateCards(title, rows, countColumn) {
  const total = rows.reduce((sum, row) => sum + Number(row[countColumn] || 0), 0);
  return h("section", {"data-section": title.toLowerCase()},
    h("h2", {}, `${title} (${total})`),
    h("div", {class: "cards"}, rows.length === 0 ? h("span", {class: "muted"}, "none") :
      rows.map((row) => h("div", {class: "card"},
        h("div", {class: "n"}, row[countColumn]), badge(row.state)))));
}

function barChart(title, points, stacks, label = (x) => x) {
  // points: [{x, y: {stack: value}}]; one bar per x, stacked by key.
  const width = 720, height = 220, pad = 36;
  const totals = points.map((p) => Object.values(p.y).reduce((a, b) => a + b, 0));
  const top = Math.max(...totals, 1e-9);
  const step = (width - 2 * pad) / Math.max(points.length, 1);
  const bars = [];
  points.forEach((point, i) => {
    let base = height - pad;
    stacks.forEach((stack, j) => {
      const value = point.y[stack] || 0;
      const size = (value / top) * (height - 2 * pad);
      base -= size;
      bars.push(svg("rect", {x: pad + i * step + 2, y: base, width: Math.max(step - 4, 1),
                             height: size, fill: PALETTE[j % PALETTE.length]},
        svg("title", {}, document.createTextNode(`${point.x} ${stack}: ${value}`))));
    });
    bars.push(svg("text", {x: pad + i * step + step / 2, y: height - pad + 14, "font-size": 10,
                           "text-anchor": "middle", fill: "#656d76"},
      document.createTextNode(label(String(point.x)))));
  });
  const axis = svg("text", {x: 4, y: pad - 10, "font-size": 10, fill: "#656d76"},
    document.createTextNode(`max ${top.toFixed(4)}`));
  return h("section", {"data-section": "chart"},
    h("h2", {}, title),
    h("div", {class: "legend"}, stacks.map((stack, j) =>
      h("span", {}, h("i", {style: {background: PALETTE[j % PALETTE.length]}}), stack))),
    svg("svg", {class: "chart", width, height, viewBox: `0 0 ${width} ${height}`,
                role: "img", "aria-label": title}, axis, bars));
}

function costByDayChart(rows) {
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const byDay = new Map();
  for (const row of rows) {
    if (!byDay.has(row.day)) byDay.set(row.day, {x: row.day, y: {}});
    byDay.get(row.day).y[row.model] = Number(row.cost_usd || 0);
  }
  return barChart("Cost per day (USD), by model", [...byDay.values()], models, (x) => x.slice(5));
}

function costByModelChart(rows) {
  const points = rows.slice(0, 12).map((r) => ({x: r.model, y: {cost: Number(r.cost_usd || 0)}}));
  return barChart("Cost by model (USD)", points, ["cost"], (x) => x.slice(0, 14));
}

const PAGES = {
  overview: (s) => [
    stateCards("Runs", s.runs_by_state, "runs"),
    stateCards("Tasks", s.tasks_by_state, "tasks"),
    stateCards("Workers", s.workers_by_state, "workers"),
    h("h2", {}, "Latest transitions"), table(s.recent_transitions)],
  runs: (s) => [h("h2", {}, "Runs"), table(s.runs, {empty: "No run yet."})],
  run: (s, arg) => {
    const run = s.run[0];
    return [
      h("h2", {}, `Run ${arg} `, badge(run.state)),
      h("dl", {class: "kv"}, ["name", "tasks_total", "cost_usd", "tokens_in", "tokens_out",
                              "started_at", "ended_at", "reason", "budget_id"]
        .flatMap((k) => [h("dt", {}, k), h("dd", {}, formatCell(k, run[k]))])),
      h("h2", {}, "Timeline"), h("div", {"data-section": "timeline"}, table(s.timeline)),
      h("h2", {}, "Tasks"), table(s.tasks),
      h("h2", {}, "Usage by model"), table(s.usage, {empty: "No usage recorded."})];
  },
  tasks: (s, arg) => [
    h("h2", {}, "Tasks ",
      h("select", {id: "task-state", onchange: (e) => {
        location.hash = e.target.value ? `#/tasks/${e.target.value}` : "#/tasks";
      }}, TASK_STATES.map((state) => h("option", {value: state, selected: state === (arg || "")},
        state || "every state")))),
    table(s.tasks, {empty: "No task in this state."})],
  workers: (s) => [h("h2", {}, "Workers"), table(s.workers, {empty: "No worker registered."})],
  breakers: (s) => [h("h2", {}, "Circuit breakers"), table(s.breakers, {empty: "No breaker."})],
  budgets: (s) => [
    h("h2", {}, "Shared budgets"), table(s.budgets, {empty: "No shared budget."}),
    h("h2", {}, "Runs with their own budget"), table(s.run_budgets, {empty: "None."})],
  cost: (s) => [costByDayChart(s.cost_by_day), costByModelChart(s.cost_by_model),
                h("h2", {}, "By model"), table(s.cost_by_model, {empty: "No usage recorded."})],
};

function route() {
  const [page, arg] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (page === "runs" && arg) return {page: "run", arg, url: `/api/runs/${encodeURIComponent(arg)}`};
  if (page === "tasks") return {page, arg, url: arg ? `/api/tasks?state=${encodeURIComponent(arg)}` : "/api/tasks"};
  const known = PAGES[page] && page !== "run" ? page : "overview";
  return {page: known, arg: null, url: `/api/${known}`};
}

async function getJson(url) {
  const response = await fetch(url, {cache: "no-store"});
  const body = await response.json();
  return {status: response.status, body};
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

async function refreshHealth() {
  const health = document.getElementById("health");
  try {
    const {body} = await getJson("/healthz");
    health.className = `badge s-${body.status}`;
    health.textContent = `health ${body.status}`;
    health.title = body.checks.filter((c) => c.status !== "ok")
      .map((c) => `${c.name}: ${c.detail}`).join("\n") || "every check ok";
    document.body.dataset.health = body.status;
  } catch (error) {
    health.className = "badge s-down";
    health.textContent = "health unknown";
  }
}

let busy = false;

async function refresh() {
  if (busy) return;
  busy = true;
  const current = route();
  try {
    const {status, body} = await getJson(current.url);
    if (status !== 200) {
      showError(`${body.error.code}: ${body.error.message}`);
      return;
    }
    showError(null);
    const view = document.getElementById("view");
    const scroll = window.scrollY;
    view.replaceChildren(...PAGES[current.page](body.sections, current.arg));
    window.scrollTo(0, scroll);
    document.getElementById("status").textContent =
      `read ${new Date(body.read_at).toLocaleTimeString()}`;
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("active", link.dataset.page === (current.page === "run" ? "runs" : current.page));
    }
    document.body.dataset.page = current.page;
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (error) {
    showError(`runlog does not answer: ${error}`);
  } finally {
    busy = false;
  }
  await refreshHealth();
}

window.addEventListener("hashchange", refresh);
window.addEventListener("DOMContentLoaded", () => {
  refresh();
  setInterval(() => { if (document.getElementById("auto").checked) refresh(); }, REFRESH_MS);
});
