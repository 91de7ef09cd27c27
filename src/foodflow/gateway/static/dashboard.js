// foodflow live dashboard: Server-Sent Events in, plain DOM out; the charts are uPlot's (vendored
// under /static/vendor/uplot, served by the gateway: no CDN), the courier map a hand-drawn SVG.
// Operators log in with the form; the bearer token lives in this page's memory only (a reload
// logs out) and goes with every /dashboard/ request, the event stream included: it is read with
// fetch(), because EventSource cannot send an Authorization header.
"use strict";

const BOARD_LIMIT = 100;
const STOCK_POLL_MS = 3000;
const COURIER_POLL_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";

const orders = new Map(); // order_id -> card, insertion order = last change order

// The logged-in session: its token, its stream and its timers; null when logged out.
let session = null;
let reconnectMs = 1000; // the stream's `retry:` field may change it

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function money(total, currency) {
  if (total === null || total === undefined) return "–";
  return `${Number(total).toFixed(2)} ${currency || ""}`.trim();
}

function age(isoTime) {
  const seconds = Math.max(0, (Date.now() - Date.parse(isoTime)) / 1000);
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

// --- the board ------------------------------------------------------------------------------

function rowFor(card) {
  const tr = el("tr", { "data-order-id": card.order_id, "data-status": card.status });
  const idCell = el("td");
  const button = el(
    "button",
    { type: "button", class: "order-link", "aria-label": `Order ${card.order_id}: show its timeline` },
    card.order_id.slice(0, 8),
  );
  button.addEventListener("click", () => showTimeline(card.order_id));
  idCell.append(button);
  const statusCell = el("td");
  statusCell.append(el("span", { class: "status", "data-status": card.status }, card.status));
  const reason = el("td", { class: "reason" }, card.reason || "");
  if (card.detail) reason.title = card.detail;
  tr.append(
    idCell,
    statusCell,
    el("td", { class: "total" }, money(card.total, card.currency)),
    el("td", { class: "age", "data-created": card.created_at }, age(card.created_at)),
    el("td", { class: "user", "data-user-id": card.user_id, title: card.user_id }, card.customer || card.user_id),
    reason,
  );
  return tr;
}

function upsert(card, flash) {
  const current = orders.get(card.order_id);
  if (current && current.version >= card.version) return;
  orders.delete(card.order_id);
  orders.set(card.order_id, card);
  while (orders.size > BOARD_LIMIT) orders.delete(orders.keys().next().value);
  const rows = $("board-rows");
  const existing = rows.querySelector(`tr[data-order-id="${card.order_id}"]`);
  const tr = rowFor(card);
  if (flash) tr.classList.add("flash");
  if (existing) existing.remove();
  rows.prepend(tr);
  while (rows.children.length > BOARD_LIMIT) rows.lastElementChild.remove();
  $("board-empty").hidden = rows.children.length > 0;
}

function replaceBoard(cards) {
  orders.clear();
  $("board-rows").replaceChildren();
  // cards come newest first; insert oldest first so the newest ends on top.
  for (const card of [...cards].reverse()) upsert(card, false);
  $("board-empty").hidden = orders.size > 0;
}

function refreshAges() {
  for (const cell of document.querySelectorAll("td.age[data-created]")) {
    cell.textContent = age(cell.dataset.created);
  }
}

// --- figures and charts -----------------------------------------------------------------------

function renderCounters(counts) {
  const list = $("counters");
  for (const [status, n] of Object.entries(counts)) {
    let item = $(`count-${status}`);
    if (!item) {
      item = el("li", { id: `count-${status}`, "data-status": status });
      item.append(el("span", { class: "n" }, "0"), el("span", { class: "label" }, status));
      list.append(item);
    }
    item.querySelector(".n").textContent = String(n);
  }
}

function svgNode(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// The two time charts; created on the first stats, then fed new data.
const charts = {};

function chartWidth(id) {
  return Math.max(260, $(id).clientWidth || 600);
}

// The time axis' labels, local time of day (seconds too when ticks are under a minute apart);
// written on the chart's element as well, where a test (or a person's devtools) reads them.
function timeTicks(u, ticks) {
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 60;
  const shape = { hour: "2-digit", minute: "2-digit", hour12: false, ...(step < 60 ? { second: "2-digit" } : {}) };
  const labels = ticks.map((t) => new Date(t * 1000).toLocaleTimeString([], shape));
  u.root.dataset.timeTicks = labels.join(" ");
  return labels;
}

function timeChart(id, series, yLabel, yValues) {
  const options = {
    width: chartWidth(id),
    height: 190,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      { stroke: "#4a5360", grid: { stroke: "#e6e9ee" }, values: timeTicks }, // local time
      { stroke: "#4a5360", grid: { stroke: "#e6e9ee" }, label: yLabel, size: 56, values: yValues },
    ],
    series: [{}, ...series],
  };
  const empty = [[], ...series.map(() => [])];
  const chart = new uPlot(options, empty, $(id));
  new ResizeObserver(() => chart.setSize({ width: chartWidth(id), height: 190 })).observe($(id));
  return chart;
}

function drawCharts(stats) {
  if (typeof uPlot === "undefined") return; // the library failed to load: figures still show
  const xs = stats.series.map((p) => Date.parse(p.at) / 1000);
  if (!charts.latency) {
    charts.latency = timeChart("chart-latency", [
      { label: "p50", stroke: "#0b57d0", width: 2, points: { size: 4 } },
      { label: "p90", stroke: "#8a5300", width: 2, points: { size: 4 } },
      { label: "p99", stroke: "#b3261e", width: 2, points: { size: 4 } },
    ], "seconds", (u, ticks) => ticks.map((t) => seconds(t)));
    charts.throughput = timeChart("chart-throughput", [
      { label: "received", stroke: "#3d4a5c", fill: "rgba(61, 74, 92, 0.15)", width: 2 },
      { label: "finished", stroke: "#17663a", width: 2 },
    ], `orders / ${stats.bucket_seconds} s`);
  }
  charts.latency.setData([
    xs,
    stats.series.map((p) => p.p50_seconds),
    stats.series.map((p) => p.p90_seconds),
    stats.series.map((p) => p.p99_seconds),
  ]);
  charts.throughput.setData([xs, stats.series.map((p) => p.received), stats.series.map((p) => p.finished)]);
  $("app").dataset.chartPoints = String(stats.series.filter((p) => p.finished > 0).length);
}

function renderStatusLatency(rows) {
  const body = $("status-latency").tBodies[0];
  body.replaceChildren(...rows.map((r) => {
    const tr = el("tr", { "data-status": r.status });
    const cell = el("td");
    cell.append(el("span", { class: "status", "data-status": r.status }, r.status));
    tr.append(cell, el("td", {}, String(r.count)), el("td", {}, seconds(r.p50_seconds)),
      el("td", {}, seconds(r.p90_seconds)), el("td", {}, seconds(r.p99_seconds)));
    return tr;
  }));
}

function renderStats(stats) {
  renderCounters(stats.counts);
  $("counts-source").textContent = stats.counts_source === "postgres"
    ? "every stored order (PostgreSQL)" : "seen by this gateway (PostgreSQL unavailable)";
  $("orders-per-minute").textContent = String(stats.orders_per_minute);
  $("latency-p50").textContent = seconds(stats.latency_p50_seconds);
  $("latency-p90").textContent = seconds(stats.latency_p90_seconds);
  $("latency-p99").textContent = seconds(stats.latency_p99_seconds);
  $("orders-seen").textContent = String(stats.orders_seen);
  $("test-orders-seen").textContent = String(stats.test_orders_seen);
  for (const node of document.querySelectorAll(".bucket")) node.textContent = String(stats.bucket_seconds);
  renderStatusLatency(stats.by_status);
  drawCharts(stats);
}

// --- operations: lag, dead letters, health ---------------------------------------------------

function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function renderOps(ops) {
  if (!ops) return;
  $("app").dataset.opsAt = ops.measured_at || "";
  $("ops-age").textContent = ops.measured_at ? `measured ${new Date(ops.measured_at).toLocaleTimeString()}` : "not measured yet";
  $("total-lag").textContent = ops.total_lag === null ? "–" : String(ops.total_lag);
  $("lag-table").tBodies[0].replaceChildren(...ops.groups.map((g) => {
    const tr = el("tr", { "data-group": g.group_id, class: g.lag > 0 ? "behind" : "" });
    tr.title = Object.entries(g.by_topic).map(([t, n]) => `${t}: ${n}`).join(", ");
    tr.append(el("td", { class: "mono" }, g.group_id), el("td", {}, g.state),
      el("td", {}, String(g.members)), el("td", { class: "n" }, String(g.lag)));
    return tr;
  }));
  $("ops-problems").textContent = ops.problems.join("; ");
  $("dead-letter-count").textContent = ops.dead_letters === null ? "–" : String(ops.dead_letters);
  $("dead-letter-list").replaceChildren(...ops.latest_dead_letters.map((d) => {
    const li = el("li", { "data-ref": d.ref });
    const head = el("p", { class: "letter-head" });
    head.append(el("time", { datetime: d.failed_at }, new Date(d.failed_at).toLocaleTimeString()),
      ` ${d.source}`);
    const command = el("code", { class: "replay" }, d.replay);
    const copy = el("button", { type: "button", class: "copy", "aria-label": `Copy: ${d.replay}` }, "Copy");
    copy.addEventListener("click", () => copyText(d.replay, copy));
    const replay = el("p", { class: "letter-replay" });
    replay.append(command, " ", copy);
    li.append(head, el("p", { class: "letter-error" }, d.error), replay);
    return li;
  }));
  $("health-table").tBodies[0].replaceChildren(...ops.services.map((h) => {
    const tr = el("tr", { "data-service": h.service, "data-ready": String(h.ready) });
    const failing = Object.entries(h.checks).filter(([, ok]) => !ok).map(([name]) => name);
    const ready = el("td", { class: h.ready ? "ok" : "bad" }, h.ready ? "ready" : "down");
    if (failing.length) ready.title = `failing: ${failing.join(", ")}`;
    const restarts = el("td", {}, h.restarts === null ? "–" : String(h.restarts) + (h.gave_up ? " (gave up)" : ""));
    if (h.last_exit) restarts.title = `last exit: ${h.last_exit}`;
    tr.append(el("td", { class: "mono" }, h.service), ready, restarts,
      el("td", {}, seconds(h.event_loop_lag_seconds)), el("td", {}, duration(h.uptime_seconds)));
    return tr;
  }));
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (err) {
    // No clipboard (plain http on another host): select the command for a manual copy.
    const range = document.createRange();
    range.selectNodeContents(button.previousElementSibling.previousElementSibling || button.parentNode);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Selected";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

// --- session ---------------------------------------------------------------------------------

class LoggedOut extends Error {}

// A request to the gateway with the session's token; a 401 or 403 ends the session.
async function api(path, options = {}) {
  if (!session) throw new LoggedOut("logged out");
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${session.token}` };
  const response = await fetch(path, { ...options, headers, signal: session.aborts.signal });
  if (response.status === 401 || response.status === 403) {
    const answer = await response.json().catch(() => ({}));
    logOut(typeof answer.detail === "string" ? answer.detail : `HTTP ${response.status}`);
    throw new LoggedOut(`HTTP ${response.status}`);
  }
  return response;
}

async function logIn(event) {
  event.preventDefault();
  const error = $("login-error");
  error.textContent = "";
  const body = { email: $("login-email").value.trim(), password: $("login-password").value };
  let response;
  try {
    response = await fetch("/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (err) {
    error.textContent = "The gateway cannot be reached.";
    return;
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    error.textContent = typeof answer.detail === "string" ? answer.detail : "Wrong email or password.";
    return;
  }
  if (answer.user.role !== "operator" && answer.user.role !== "admin") {
    error.textContent = "This dashboard is for operators and admins.";
    return;
  }
  $("login-password").value = "";
  start(answer);
}

function start(login) {
  session = { token: login.access_token, aborts: new AbortController(), timers: [] };
  // The token expires: end the session then rather than fail request by request.
  session.timers.push(setTimeout(() => logOut("The session has expired; log in again."), login.expires_in * 1000));
  $("session-user").textContent = `${login.user.email} (${login.user.role})`;
  $("login").hidden = true;
  $("session").hidden = false;
  $("app").hidden = false;
  stream(session);
  pollStock();
  pollCouriers();
  session.timers.push(setInterval(pollStock, STOCK_POLL_MS), setInterval(pollCouriers, COURIER_POLL_MS));
}

function logOut(message) {
  if (!session) return;
  session.aborts.abort();
  for (const timer of session.timers) clearTimeout(timer);
  session = null;
  setConnection("logged-out", "Logged out");
  $("app").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-email").focus();
}

// --- live stream ----------------------------------------------------------------------------

function setConnection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = text;
}

const STREAM_HANDLERS = {
  snapshot(snap) {
    replaceBoard(snap.orders);
    renderStats(snap.stats);
    renderOps(snap.ops);
  },
  ops(ops) { renderOps(ops); },
  order(card) { upsert(card, true); },
  stats(stats) { renderStats(stats); },
};

// One block of the text/event-stream format: `event:`, `data:` (joined), `retry:`; comments skipped.
function dispatchBlock(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
    else if (field === "retry" && /^\d+$/.test(value)) reconnectMs = Number(value);
  }
  const handler = STREAM_HANDLERS[name];
  if (data.length && handler) handler(JSON.parse(data.join("\n")));
}

async function readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatchBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

// The board's stream for as long as this session lasts, reconnecting when it drops.
async function stream(mine) {
  while (session === mine) {
    try {
      const response = await api("/dashboard/events", { headers: { Accept: "text/event-stream" }, cache: "no-store" });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setConnection("live", "Live");
      await readEvents(response.body);
    } catch (err) {
      if (err instanceof LoggedOut || session !== mine) return;
      console.warn("event stream dropped", err);
    }
    if (session !== mine) return;
    setConnection("lost", "Reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, reconnectMs));
  }
}

// --- stock, couriers ------------------------------------------------------------------------

async function pollStock() {
  try {
    const report = await (await api("/dashboard/stock")).json();
    $("stock-threshold").textContent = String(report.threshold);
    const most = Math.max(1, ...report.items.map((item) => item.stock));
    $("stock-list").replaceChildren(...report.items.map((item) => {
      const li = el("li", { "data-item-id": item.item_id, class: item.low ? "low" : "" });
      const bar = el("span", { class: "bar", "aria-hidden": "true" });
      bar.style.width = `${Math.min(100, (item.stock / most) * 100).toFixed(1)}%`;
      li.append(el("span", { class: "name" }, item.name), el("span", { class: "qty" }, String(item.stock)), bar);
      return li;
    }));
  } catch (err) {
    if (!(err instanceof LoggedOut)) console.warn("stock poll failed", err);
  }
}

async function pollCouriers() {
  try {
    const board = await (await api("/dashboard/couriers")).json();
    const box = $("couriers");
    if (!board.delivery_service) {
      box.replaceChildren(el("p", { class: "empty" }, board.message));
      return;
    }
    drawCourierMap(board.couriers);
    const list = el("ul", { class: "courier-list" });
    for (const c of board.couriers) {
      const doing = c.current_order ? `delivering ${c.current_order.slice(0, 8)}` : c.available ? "free" : "off";
      list.append(el("li", { "data-courier-id": c.courier_id }, `${c.name}: ${doing}`));
    }
    box.replaceChildren(el("p", {}, board.message), list);
  } catch (err) {
    if (!(err instanceof LoggedOut)) console.warn("courier poll failed", err);
  }
}

// Couriers by position: a plain lat/lon plot (equirectangular, fitted to the couriers' box).
function drawCourierMap(couriers) {
  const svg = $("courier-map");
  for (const child of [...svg.children]) if (child.tagName !== "title") child.remove();
  if (!couriers.length) return;
  const lats = couriers.map((c) => c.lat);
  const lons = couriers.map((c) => c.lon);
  const pad = 0.005;
  const [minLat, maxLat] = [Math.min(...lats) - pad, Math.max(...lats) + pad];
  const [minLon, maxLon] = [Math.min(...lons) - pad, Math.max(...lons) + pad];
  const x = (lon) => 20 + ((lon - minLon) / (maxLon - minLon)) * 260;
  const y = (lat) => 180 - ((lat - minLat) / (maxLat - minLat)) * 160;
  for (let i = 0; i <= 4; i++) {
    svg.append(svgNode("line", { x1: 20, x2: 280, y1: 20 + i * 40, y2: 20 + i * 40, class: "grid" }));
    svg.append(svgNode("line", { y1: 20, y2: 180, x1: 20 + i * 65, x2: 20 + i * 65, class: "grid" }));
  }
  const corner = svgNode("text", { x: 22, y: 195, class: "axis" });
  corner.textContent = `${minLat.toFixed(3)}, ${minLon.toFixed(3)} → ${maxLat.toFixed(3)}, ${maxLon.toFixed(3)}`;
  svg.append(corner);
  for (const c of couriers) {
    const busy = Boolean(c.current_order);
    const dot = svgNode("circle", {
      cx: x(c.lon).toFixed(1), cy: y(c.lat).toFixed(1), r: 5,
      class: busy ? "courier busy" : "courier free", "data-courier-id": c.courier_id,
    });
    const tip = svgNode("title", {});
    tip.textContent = `${c.name}: ${busy ? "delivering " + c.current_order.slice(0, 8) : c.available ? "free" : "off"}`;
    dot.append(tip);
    const label = svgNode("text", { x: (x(c.lon) + 7).toFixed(1), y: (y(c.lat) + 4).toFixed(1), class: "label" });
    label.textContent = c.name.split(" ")[0];
    svg.append(dot, label);
  }
}

// --- timeline dialog ------------------------------------------------------------------------

async function showTimeline(orderId) {
  const dialog = $("timeline");
  const body = $("timeline-body");
  $("timeline-heading").textContent = `Order ${orderId}`;
  body.replaceChildren(el("p", {}, "Loading…"));
  if (!dialog.open) dialog.showModal();
  let response;
  try {
    response = await api(`/dashboard/orders/${orderId}`);
  } catch (err) {
    if (dialog.open) dialog.close();
    return;
  }
  if (!response.ok) {
    body.replaceChildren(el("p", {}, `No timeline (${response.status}).`));
    return;
  }
  const t = await response.json();
  const now = t.current || t.stored;
  const parts = [];
  if (now) {
    const price = t.current && t.current.price ? t.current.price : null;
    const total = price ? money(price.total, price.currency) : money(t.stored && t.stored.total, t.stored && t.stored.currency);
    const summary = el("p");
    summary.append(el("span", { class: "status", "data-status": now.status }, now.status), ` total ${total}`);
    if (now.reason) summary.append(` · reason ${now.reason}`);
    parts.push(summary);
    if (now.detail) parts.push(el("p", { class: "hint" }, now.detail));
    const kitchen = t.current && t.current.kitchen;
    if (kitchen) {
      const readyBy = new Date(kitchen.ready_by).toLocaleTimeString();
      parts.push(el("p", { class: "kitchen" }, `Kitchen: ${kitchen.restaurant_name}, ready by ${readyBy}`));
    }
  }
  if (t.customer) parts.push(el("p", { class: "customer" }, `Customer: ${t.customer}`));
  const list = el("ol", { class: "timeline", "aria-label": "Status changes" });
  // Each step with its time since the order was published on Kafka, when that is known.
  const published = t.current && t.current.published_at ? Date.parse(t.current.published_at) : null;
  if (published !== null) {
    const li = el("li", { class: "published" });
    li.append(el("strong", {}, "published on validated_orders"),
      el("time", { datetime: t.current.published_at }, new Date(published).toLocaleTimeString()));
    list.append(li);
  }
  for (const h of t.history) {
    const li = el("li");
    li.append(el("strong", {}, `v${h.version} ${h.status}`));
    if (h.reason) li.append(` (${h.reason})`);
    li.append(el("time", { datetime: h.at }, new Date(h.at).toLocaleTimeString()));
    if (published !== null) li.append(el("span", { class: "since" }, `+${seconds((Date.parse(h.at) - published) / 1000)}`));
    list.append(li);
  }
  parts.push(list);
  if (t.items.length) {
    const items = el("ul", { "aria-label": "Items" });
    for (const i of t.items) items.append(el("li", {}, `${i.quantity} × ${i.item_id} ${i.unit_price ? "@ " + i.unit_price : ""}`));
    parts.push(items);
  }
  parts.push(el("p", { class: "hint" }, t.stored ? "Persisted in PostgreSQL." : "Not (yet) in PostgreSQL."));
  body.replaceChildren(...parts);
}

// --- test order form ------------------------------------------------------------------------

// The menu by restaurant (with whether it is open now), then the listed items no restaurant
// lists (a test's own items).
async function loadMenu() {
  const box = $("order-items");
  try {
    const menu = await (await fetch("/menu")).json();
    box.replaceChildren();
    const shown = new Set();
    const addItem = (item) => {
      const id = `qty-${item.item_id}`;
      shown.add(item.item_id);
      box.append(
        el("label", { for: id }, `${item.name} (${Number(item.price).toFixed(2)})`),
        el("input", { id, type: "number", min: "0", max: "100", value: "0", "data-item-id": item.item_id, inputmode: "numeric" }),
      );
    };
    for (const r of menu.restaurants) {
      const state = r.open_now ? "open" : "closed";
      box.append(el("p", { class: "restaurant", "data-restaurant-id": r.restaurant_id, "data-open": String(r.open_now) }, `${r.name} (${state})`));
      r.items.forEach(addItem);
    }
    const others = menu.items.filter((item) => !shown.has(item.item_id));
    if (others.length && menu.restaurants.length) box.append(el("p", { class: "restaurant" }, "Other items"));
    others.forEach(addItem);
  } catch (err) {
    box.replaceChildren(el("p", {}, "The menu could not be loaded."));
  }
}

async function placeOrder(event) {
  event.preventDefault();
  const result = $("order-result");
  const items = [...document.querySelectorAll("#order-items input[data-item-id]")]
    .map((input) => ({ item_id: input.dataset.itemId, quantity: parseInt(input.value, 10) || 0 }))
    .filter((line) => line.quantity > 0);
  if (!items.length) {
    result.dataset.ok = "false";
    result.textContent = "Choose at least one item (quantity above 0).";
    return;
  }
  const body = { items, promo_code: $("order-promo").value.trim() || null };
  let response;
  try {
    response = await api("/dashboard/test-order", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (err) {
    if (err instanceof LoggedOut) return;
    result.dataset.ok = "false";
    result.textContent = "The gateway cannot be reached.";
    return;
  }
  const answer = await response.json();
  if (!response.ok) {
    result.dataset.ok = "false";
    result.textContent = `Refused: ${typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail)}`;
    return;
  }
  result.dataset.ok = "true";
  result.dataset.orderId = answer.order_id;
  result.dataset.userId = answer.user_id;
  result.textContent = `Order ${answer.order_id} sent to ${answer.topic} as the demo customer.`;
}

// --- start ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", () => logOut("Logged out."));
  $("test-order").addEventListener("submit", placeOrder);
  loadMenu(); // the menu is public
  setInterval(refreshAges, 1000);
  $("login-email").focus();
});
