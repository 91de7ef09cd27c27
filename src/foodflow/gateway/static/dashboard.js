// foodflow live dashboard: Server-Sent Events in, plain DOM and hand-drawn SVG out. No libraries.
"use strict";

const BOARD_LIMIT = 100;
const STOCK_POLL_MS = 3000;
const COURIER_POLL_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";

const orders = new Map(); // order_id -> card, insertion order = last change order

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

// --- live stream ----------------------------------------------------------------------------

function setConnection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = text;
}

function connect() {
  const source = new EventSource("/dashboard/events");
  source.addEventListener("open", () => setConnection("live", "Live"));
  source.addEventListener("error", () => setConnection("lost", "Reconnecting…"));
  source.addEventListener("snapshot", (e) => {
    const snap = JSON.parse(e.data);
    replaceBoard(snap.orders);
    renderStats(snap.stats);
    setConnection("live", "Live");
  });
  source.addEventListener("order", (e) => upsert(JSON.parse(e.data), true));
  source.addEventListener("stats", (e) => renderStats(JSON.parse(e.data)));
}

// --- stock, couriers ------------------------------------------------------------------------

async function pollStock() {
  try {
    const report = await (await fetch("/dashboard/stock")).json();
    $("stock-threshold").textContent = String(report.threshold);
    $("stock-list").replaceChildren(...report.items.map((item) => {
      const li = el("li", { "data-item-id": item.item_id, class: item.low ? "low" : "" });
      li.append(el("span", { class: "name" }, item.name), el("span", { class: "qty" }, String(item.stock)));
      return li;
    }));
  } catch (err) {
    console.warn("stock poll failed", err);
  }
}

async function pollCouriers() {
  try {
    const board = await (await fetch("/dashboard/couriers")).json();
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
    console.warn("courier poll failed", err);
  }
}

// --- timeline dialog ------------------------------------------------------------------------

async function showTimeline(orderId) {
  const dialog = $("timeline");
  const body = $("timeline-body");
  $("timeline-heading").textContent = `Order ${orderId}`;
  body.replaceChildren(el("p", {}, "Loading…"));
  if (!dialog.open) dialog.showModal();
  const response = await fetch(`/dashboard/orders/${orderId}`);
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
  const body = { user_id: $("order-user").value.trim() || "dashboard-user", items, promo_code: $("order-promo").value.trim() || null };
  const response = await fetch("/dashboard/test-order", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) {
    result.dataset.ok = "false";
    result.textContent = `Refused: ${typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail)}`;
    return;
  }
  result.dataset.ok = "true";
  result.dataset.orderId = answer.order_id;
  result.textContent = `Order ${answer.order_id} sent to ${answer.topic}.`;
}

// --- start ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("test-order").addEventListener("submit", placeOrder);
  connect();
  loadMenu();
  pollStock();
  pollCouriers();
  setInterval(pollStock, STOCK_POLL_MS);
  setInterval(pollCouriers, COURIER_POLL_MS);
  setInterval(refreshAges, 1000);
});
