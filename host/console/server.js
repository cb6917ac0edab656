// The server view: what runs (version, auth, plugin and mode, capabilities), its health
// (/readyz), and charts of the last five minutes from /metrics (appends, bytes in and out,
// live readers, streams, storage on disk and live). Polls every 2 s while open; reads only.

import { h, ctx, authHeaders, problemOf, humanBytes, badge, mono, setTitle, dl } from "./util.js";

const EVERY_MS = 2000;
const POINTS = 150; // five minutes
const NS = "http://www.w3.org/2000/svg";

export function parseMetrics(text) {
  const sums = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line.trim());
    if (!m) continue;
    const val = Number(m[3]);
    if (!isNaN(val)) sums[m[1]] = (sums[m[1]] || 0) + val;
  }
  return sums;
}

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// A line chart of `samples` (null: no value) over the last POINTS polls, with its peak.
function chart(samples, fmt) {
  const W = 600, H = 120, PAD = 4;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "chart", role: "img" });
  for (const y of [0.25, 0.5, 0.75]) root.append(svg("line", { x1: 0, x2: W, y1: H * y, y2: H * y, class: "grid" }));
  const pts = samples.map((v, i) => [i, v]).filter(([, v]) => v !== null && !isNaN(v));
  const max = Math.max(0, ...pts.map(([, v]) => v));
  const span = max || 1;
  const step = W / (POINTS - 1);
  const off = POINTS - samples.length;
  const xy = pts.map(([i, v]) => [((i + off) * step).toFixed(1), (H - PAD - (v / span) * (H - 2 * PAD)).toFixed(1)]);
  if (xy.length > 1) {
    root.append(svg("polygon", { points: `${xy[0][0]},${H} ${xy.map((p) => p.join(",")).join(" ")} ${xy[xy.length - 1][0]},${H}`, class: "area" }));
    root.append(svg("polyline", { points: xy.map((p) => p.join(",")).join(" "), class: "line" }));
  }
  root.setAttribute("aria-label", `peak ${fmt(max)} over the last ${Math.round((samples.length * EVERY_MS) / 1000)} s`);
  return h("div", { class: "chart-box" }, root,
    h("div", { class: "chart-axis muted small" }, h("span", {}, "5 min ago"), h("span", { class: "peak" }, "peak " + fmt(max)), h("span", {}, "now")));
}

const FIGURES = [
  ["fig-appends", "Appends / s", (x) => x.toFixed(1), (m, p, dt) => rate(m, p, dt, "ds_appended_messages_total")],
  ["fig-bytes", "Bytes appended / s", (x) => humanBytes(x) + "/s", (m, p, dt) => rate(m, p, dt, "ds_appended_bytes_total")],
  ["fig-read", "Bytes read / s", (x) => humanBytes(x) + "/s", (m, p, dt) => rate(m, p, dt, "ds_read_bytes_total")],
  ["fig-live", "Live readers (SSE + long-poll)", (x) => String(Math.round(x)), (m) => (m.ds_live_sse_connections ?? 0) + (m.ds_live_long_poll_connections ?? 0)],
  ["fig-streams", "Streams", (x) => String(Math.round(x)), (m) => m.ds_streams ?? null],
  ["fig-disk", "On disk", humanBytes, (m) => m.ds_storage_disk_bytes ?? null],
  ["fig-stream-bytes", "Live bytes (streams)", humanBytes, (m) => m.ds_storage_stream_bytes ?? null],
  ["fig-dead", "Dead bytes (awaiting compaction)", humanBytes, (m) => m.ds_storage_dead_bytes ?? null],
];

function rate(m, prev, dt, key) {
  if (!prev || !(dt > 0) || m[key] === undefined) return null;
  return Math.max(0, (m[key] - (prev[key] ?? 0)) / dt);
}

export async function renderServer(root, r, view) {
  setTitle("Server");
  const c = ctx.config || {};
  const p = c.plugin || {};
  const health = h("span", { id: "health" }, "…");
  root.append(h("h2", {}, "Server"), h("div", { id: "server-info" }, dl([
    ["health", health], ["server version", c.version], ["auth mode", c.auth_mode], ["base path", c.base_path ? mono(c.base_path) : null],
    ["storage mode", p.mode ? mono(p.mode) : null], ["plugin", p.name ? `${p.name} ${p.version || ""}` : null], ["ABI version", p.abi_version],
    ["capabilities", (c.capabilities || []).length ? h("span", { class: "caps" }, c.capabilities.map((x) => badge(x))) : null],
  ])));
  const figs = FIGURES.map(([id, label, fmt, read]) => {
    const num = h("span", { class: "fig-value mono" }, "–");
    const box = h("div", { class: "fig-chart" }, chart([], fmt));
    return { id, fmt, read, num, box, samples: [], el: h("section", { class: "fig", id }, h("h3", { class: "fig-label" }, label), num, box) };
  });
  const status = h("p", { class: "muted", id: "metrics-status" }, `Polling /metrics every ${EVERY_MS / 1000} s…`);
  root.append(h("h3", {}, "The last five minutes"), h("div", { class: "figs" }, figs.map((f) => f.el)), status);

  let prev = null, prevT = 0, timer = 0, stopped = false;
  view.cleanup = () => { stopped = true; clearInterval(timer); };
  async function checkHealth() {
    try {
      const res = await fetch("/readyz", { cache: "no-store" });
      if (stopped) return;
      health.replaceChildren(res.ok ? badge("ready", "ok") : badge((await problemOf(res)).message, "closed"));
    } catch (e) { if (!stopped) health.replaceChildren(badge("unreachable: " + e.message, "closed")); }
  }
  async function poll() {
    checkHealth();
    let res;
    try {
      res = await fetch("/metrics", { headers: authHeaders(), cache: "no-store" });
    } catch (e) { if (!stopped) status.textContent = "Network error: " + e.message; return; }
    if (stopped) return;
    if (res.status === 401 || res.status === 403) {
      clearInterval(timer);
      const pr = await problemOf(res);
      status.textContent = `Metrics are not available with the current token (${pr.message}).`;
      status.className = "warn";
      return;
    }
    if (!res.ok) { status.textContent = (await problemOf(res)).message; return; }
    const m = parseMetrics(await res.text());
    if (stopped) return;
    const now = performance.now();
    const dt = prev ? (now - prevT) / 1000 : 0;
    for (const f of figs) {
      const val = f.read(m, prev, dt);
      f.samples.push(val);
      if (f.samples.length > POINTS) f.samples.shift();
      f.num.textContent = val === null ? "–" : f.fmt(val);
      f.box.replaceChildren(chart(f.samples, f.fmt));
    }
    prev = m;
    prevT = now;
    status.textContent = "Updated " + new Date().toLocaleTimeString();
    status.className = "muted";
  }
  await poll();
  if (!stopped && status.className !== "warn") timer = setInterval(poll, EVERY_MS);
}
