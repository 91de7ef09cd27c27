// foodflow live dashboard: Server-Sent Events in, plain DOM and hand-drawn SVG out. No libraries.
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
    el("td", { class: "user" }, card.user_id),
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

function clearChart(svg) {
  for (const child of [...svg.children]) if (child.tagName !== "title") child.remove();
}

function drawBars(svg, values) {
  clearChart(svg);
  const max = Math.max(1, ...values);
  const width = 300 / values.length;
  values.forEach((v, i) => {
    const h = (v / max) * 70;
    svg.append(svgNode("rect", {
      x: (i * width + 1).toFixed(1), y: (78 - h).toFixed(1),
      width: (width - 2).toFixed(1), height: h.toFixed(1), fill: "#3d4a5c",
    }));
  });
  svg.append(svgNode("text", { x: 3, y: 10, "font-size": 9, fill: "#4a5360" }));
  svg.lastChild.textContent = `max ${max}`;
}

function drawLines(svg, series) {
  clearChart(svg);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(0.001, ...all);
  const step = 300 / Math.max(1, series[0].values.length - 1);
  for (const { values, colour } of series) {
    let d = "";
    values.forEach((v, i) => {
      if (v === null) return;
      const x = (i * step).toFixed(1);
      const y = (78 - (v / max) * 70).toFixed(1);
      d += `${d ? "L" : "M"}${x},${y} `;
      svg.append(svgNode("circle", { cx: x, cy: y, r: 1.8, fill: colour }));
    });
    if (d) svg.append(svgNode("path", { d, fill: "none", stroke: colour, "stroke-width": 1.6 }));
  }
  svg.append(svgNode("text", { x: 3, y: 10, "font-size": 9, fill: "#4a5360" }));
  svg.lastChild.textContent = `max ${seconds(max)}`;
}

function renderStats(stats) {
  renderCounters(stats.counts);
  $("orders-per-minute").textContent = String(stats.orders_per_minute);
  $("latency-p50").textContent = seconds(stats.latency_p50_seconds);
  $("latency-p99").textContent = seconds(stats.latency_p99_seconds);
  $("orders-seen").textContent = String(stats.orders_seen);
  drawBars($("chart-orders"), stats.series.map((p) => p.orders));
  drawLines($("chart-latency"), [
    { values: stats.series.map((p) => p.p50_seconds), colour: "#0b57d0" },
    { values: stats.series.map((p) => p.p99_seconds), colour: "#b3261e" },
  ]);
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
  },
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
    $("stock-list").replaceChildren(...report.items.map((item) => {
      const li = el("li", { "data-item-id": item.item_id, class: item.low ? "low" : "" });
      li.append(el("span", { class: "name" }, item.name), el("span", { class: "qty" }, String(item.stock)));
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
  }
  const list = el("ol", { class: "timeline", "aria-label": "Status changes" });
  for (const h of t.history) {
    const li = el("li");
    li.append(el("strong", {}, `v${h.version} ${h.status}`));
    if (h.reason) li.append(` (${h.reason})`);
    li.append(el("time", { datetime: h.at }, new Date(h.at).toLocaleTimeString()));
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

async function loadMenu() {
  const box = $("order-items");
  try {
    const menu = await (await fetch("/menu")).json();
    box.replaceChildren();
    for (const item of menu) {
      const id = `qty-${item.item_id}`;
      box.append(
        el("label", { for: id }, `${item.name} (${Number(item.price).toFixed(2)})`),
        el("input", { id, type: "number", min: "0", max: "100", value: "0", "data-item-id": item.item_id, inputmode: "numeric" }),
      );
    }
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
