"use strict";
// Durable Streams console: hash-routed single page app, no dependencies.

const TOKEN_KEY = "ds-console-token";
const PAGE_LIMIT = 100;
const MAX_ROWS = 2000;
const MAX_HEX_ROWS = 4096; // per page/chunk; the rest is only in "Download page"
const SPARK_POINTS = 60;

let config = null;
let BASE = "/v1/stream";
let current = null; // { key, name, cleanup(), update(params) }
let renderSeq = 0;

const $ = (sel, root = document) => root.querySelector(sel);

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// A stream name as a URL path. Names the server would refuse (empty, "." or ".." segments, the
// reserved "__ds/" control prefix) are refused here too, so that no crafted link can make a
// stream action reach another URL (the browser resolves dot segments before sending).
const encodePath = (name) => {
  const segs = String(name).split("/");
  if (name === "__ds" || name.startsWith("__ds/") || segs.some((s) => s === "" || s === "." || s === "..")) {
    throw new Error("not a stream name: " + JSON.stringify(name));
  }
  return segs.map(encodeURIComponent).join("/");
};
const streamUrl = (name) => BASE + "/" + encodePath(name);
const streamHash = (name, offset) =>
  "#/stream/" + encodeURIComponent(name) + (offset !== undefined && offset !== null ? "?offset=" + encodeURIComponent(offset) : "");
const listHash = (prefix, after) => {
  const q = new URLSearchParams();
  if (prefix) q.set("prefix", prefix);
  if (after) q.set("after", after);
  const s = q.toString().replace(/\+/g, "%20");
  return "#/streams" + (s ? "?" + s : "");
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function humanBytes(n) {
  if (n === null || n === undefined || isNaN(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Number(n);
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function fmtTime(s) {
  if (!s) return "–";
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString() + " (" + s + ")";
}

function contentKind(ct) {
  const lc = (ct || "").toLowerCase();
  const base = lc.split(";")[0].trim();
  if (base === "application/json") return "json";
  if (base === "application/x-ndjson") return "ndjson";
  if (base.startsWith("text/") || lc.includes("charset=")) return "text";
  return "binary";
}

function mono(text) { return h("code", { class: "mono" }, text); }

function badge(text, cls) { return h("span", { class: "badge " + (cls || "") }, text); }

function setTitle(text) { document.title = text ? text + " · Durable Streams console" : "Durable Streams console"; }

// ---------- errors and notices ----------

class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${status} ${title}: ${detail}` : `${status} ${title}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

function showError(e) {
  const el = document.getElementById("error");
  let msg = e instanceof Error ? e.message : String(e);
  if (e instanceof TypeError && /fetch|network/i.test(msg)) msg = "Network error: " + msg;
  el.textContent = msg;
  el.hidden = !msg;
}

function clearError() { showError(""); }

let noticeTimer = 0;
function notice(msg) {
  const el = document.getElementById("notice");
  el.textContent = msg;
  el.hidden = !msg;
  clearTimeout(noticeTimer);
  if (msg) noticeTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

async function problemOf(res) {
  const text = await res.text().catch(() => "");
  let j = null;
  try { j = JSON.parse(text); } catch { /* not JSON */ }
  if (!j || typeof j !== "object") return new ApiError(res.status, res.statusText || "Error", text.trim().slice(0, 300));
  const e = (j.error && typeof j.error === "object" && j.error) || {};
  return new ApiError(res.status, j.title || e.code || res.statusText || "Error", j.detail || e.message || "");
}

// ---------- auth and fetch ----------

// The token lives in this page's memory only: never in localStorage or sessionStorage, which
// any other page of this origin could read (a reload asks for it again). Earlier versions kept
// it in localStorage: wiped at start.
let consoleToken = "";
try { localStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled */ }
const getToken = () => consoleToken;
const setToken = (t) => { consoleToken = t || ""; };

function authHeaders(extra) {
  const hdrs = new Headers(extra || {});
  const t = getToken();
  if (t) hdrs.set("Authorization", "Bearer " + t);
  return hdrs;
}

function openTokenDialog() {
  const d = document.getElementById("token-dialog");
  if (d.open) return;
  $("#token-input").value = getToken();
  d.showModal();
  $("#token-input").focus();
}

// fetch with auth; throws ApiError on non-2xx (401 also opens the token dialog).
async function api(url, opts = {}) {
  const res = await fetch(url, { cache: "no-store", ...opts, headers: authHeaders(opts.headers) });
  if (res.status === 401) openTokenDialog();
  if (!res.ok) throw await problemOf(res);
  return res;
}

const apiJson = async (url, opts) => (await api(url, opts)).json();

function confirmDialog(message, yesLabel = "Delete") {
  const d = document.getElementById("confirm");
  $("#confirm-message").textContent = message;
  $("#confirm-yes").textContent = yesLabel;
  d.returnValue = "";
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "yes"), { once: true });
    d.showModal();
    $("#confirm-no").focus();
  });
}

// ---------- router ----------

function parseHash() {
  let raw = location.hash.replace(/^#/, "");
  if (!raw || raw === "/") raw = "/streams";
  const qi = raw.indexOf("?");
  const path = qi < 0 ? raw : raw.slice(0, qi);
  const params = new URLSearchParams(qi < 0 ? "" : raw.slice(qi + 1));
  const parts = path.split("/").filter(Boolean);
  const dec = (s) => { try { return decodeURIComponent(s); } catch { return s; } };
  switch (parts[0]) {
    case "streams": return { view: "streams", params };
    case "stream": return { view: "stream", name: dec(parts.slice(1).join("/")), params };
    case "new": return { view: "new", params };
    case "subscriptions": return { view: "subscriptions", params };
    case "subscription": return { view: "subscription", id: dec(parts.slice(1).join("/")), params };
    case "server": return { view: "server", params };
    default: return { view: "notfound", params };
  }
}

const VIEWS = {
  streams: renderStreams,
  stream: renderStream,
  new: renderNew,
  subscriptions: renderSubscriptions,
  subscription: renderSubscription,
  server: renderServer,
  notfound: async (root) => { root.append(h("p", {}, "Unknown page. ", h("a", { href: "#/streams" }, "Go to streams"))); },
};

async function route(force = false) {
  const r = parseHash();
  const key = r.view + ":" + (r.name ?? r.id ?? "");
  document.querySelectorAll("nav a[data-nav]").forEach((a) => {
    const on = a.dataset.nav === r.view || (a.dataset.nav === "streams" && r.view === "stream") ||
      (a.dataset.nav === "subscriptions" && r.view === "subscription");
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  if (!force && current && current.key === key && current.update) {
    try { await current.update(r); } catch (e) { showError(e); }
    return;
  }
  const seq = ++renderSeq;
  if (current && current.cleanup) { try { current.cleanup(); } catch { /* ignore */ } }
  const ae = document.activeElement;
  // keep typing in the prefix box across the re-render its own hash change causes
  current = { key, name: r.view, prefixCaret: ae && ae.id === "prefix" ? ae.selectionStart ?? 0 : null };
  clearError();
  delete document.body.dataset.view;
  const root = document.getElementById("app");
  root.replaceChildren();
  setTitle("");
  try {
    await VIEWS[r.view](root, r, current);
  } catch (e) {
    showError(e);
    if (!root.childElementCount) root.append(h("p", { class: "muted" }, "This view could not be loaded."));
  } finally {
    if (seq === renderSeq) document.body.dataset.view = r.view;
  }
}

// ---------- view: stream list ----------

async function renderStreams(root, r, ctx) {
  const prefix = r.params.get("prefix") || "";
  const after = r.params.get("after") || "";
  setTitle(prefix ? "Streams " + prefix : "Streams");
  let debounce = 0;
  const go = (p) => { clearTimeout(debounce); const target = listHash(p, ""); if (location.hash !== target) location.hash = target; };
  const input = h("input", {
    id: "prefix", type: "search", value: prefix, placeholder: "Filter by name prefix (press / to focus)",
    autocomplete: "off", spellcheck: "false",
    oninput: (e) => { clearTimeout(debounce); debounce = setTimeout(() => go(e.target.value), 300); },
  });
  ctx.cleanup = () => clearTimeout(debounce);
  const form = h("form", { class: "row search", role: "search", onsubmit: (e) => { e.preventDefault(); go(input.value); } },
    h("label", { for: "prefix" }, "Prefix"), input, h("button", { type: "submit" }, "Search"));
  // breadcrumb of the prefix's segments
  const crumbs = h("nav", { class: "crumbs", "aria-label": "Prefix path" }, h("a", { href: listHash("", "") }, "all"));
  let acc = "";
  for (const seg of prefix.match(/[^/]*\/|[^/]+$/g) || []) {
    acc += seg;
    crumbs.append(" ", h("a", { href: listHash(acc, "") }, seg));
  }
  const folders = h("div", { class: "folders", "aria-label": "Folders" });
  const tbody = h("tbody");
  const table = h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Name", "Content type", "Size", "Tail offset", ""].map((t) => h("th", { scope: "col" }, t)))),
    tbody));
  const first = h("button", { type: "button", id: "first-page", disabled: !after, onclick: () => { location.hash = listHash(prefix, ""); } }, "First page");
  const next = h("button", { type: "button", id: "next-page", disabled: true }, "Next page");
  const status = h("span", { class: "muted" });
  root.append(h("h2", {}, "Streams"), form, crumbs, folders, table, h("div", { class: "row pager" }, first, next, status),
    h("p", {}, h("a", { href: "#/new" }, "Create a stream…")));
  if (ctx.prefixCaret !== null) { input.focus(); input.setSelectionRange(ctx.prefixCaret, ctx.prefixCaret); }

  const q = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  if (prefix) q.set("prefix", prefix);
  if (after) q.set("start_after", after);
  status.textContent = "Loading…";
  const data = await apiJson(BASE + "/__ds/streams?" + q);
  const streams = data.streams || [];
  status.textContent = `${streams.length} stream${streams.length === 1 ? "" : "s"} on this page` + (after ? " (after " + after + ")" : "");

  const segs = new Set();
  for (const s of streams) {
    if (!s.name.startsWith(prefix)) continue;
    const rest = s.name.slice(prefix.length);
    const i = rest.indexOf("/");
    if (i >= 0) segs.add(rest.slice(0, i + 1));
  }
  for (const seg of segs) {
    folders.append(h("a", { class: "folder", href: listHash(prefix + seg, ""), dataset: { prefix: prefix + seg } }, seg));
  }

  if (!streams.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No streams" + (prefix ? " with this prefix" : "") + ".")));
  for (const s of streams) {
    const link = h("a", { href: streamHash(s.name) }, s.name);
    tbody.append(h("tr", {
      class: "clickable", dataset: { stream: s.name },
      onclick: (e) => { if (!e.target.closest("a")) location.hash = streamHash(s.name); },
    },
    h("td", {}, link),
    h("td", {}, s.content_type || ""),
    h("td", { class: "num" }, humanBytes(s.bytes)),
    h("td", {}, mono(s.tail_offset || "")),
    h("td", {}, streamBadges(s))));
  }
  if (data.next_start_after) {
    next.disabled = false;
    next.onclick = () => { location.hash = listHash(prefix, data.next_start_after); };
  }
}

function streamBadges(s) {
  const out = [];
  if (s.closed) out.push(badge("closed", "closed"));
  if (s.ttl_secs !== null && s.ttl_secs !== undefined) out.push(badge("TTL " + s.ttl_secs + "s", "ttl"));
  if (s.expires_at) out.push(h("span", { class: "badge ttl", title: s.expires_at }, "expires " + new Date(s.expires_at).toLocaleString()));
  if (s.fork_source) out.push(badge("fork", "fork"));
  return out;
}

// ---------- rendering messages ----------

function hexRows(bytes) {
  const rows = [];
  const n = Math.min(bytes.length, MAX_HEX_ROWS * 16);
  for (let off = 0; off < n; off += 16) {
    const slice = bytes.subarray(off, Math.min(off + 16, bytes.length));
    const hex = [];
    let ascii = "";
    for (let i = 0; i < 16; i++) {
      if (i < slice.length) {
        hex.push(slice[i].toString(16).padStart(2, "0"));
        ascii += slice[i] >= 0x20 && slice[i] <= 0x7e ? String.fromCharCode(slice[i]) : ".";
      } else hex.push("  ");
    }
    rows.push(h("div", { class: "hex-row" }, off.toString(16).padStart(8, "0") + "  " + hex.join(" ") + "  |" + ascii + "|"));
  }
  if (bytes.length > n) rows.push(h("div", { class: "muted" }, `… ${bytes.length - n} more bytes (use "Download page")`));
  return rows;
}

// Turns one payload (page body or SSE data) into .msg elements.
function messageRows(kind, payload) {
  if (payload instanceof Uint8Array) {
    if (!payload.length) return [];
    return [h("div", { class: "msg hex" }, hexRows(payload))];
  }
  if (kind === "json") {
    if (!payload.trim()) return [];
    let vals;
    try { vals = JSON.parse(payload); } catch (e) {
      return [h("div", { class: "msg bad" }, h("pre", {}, payload), h("small", {}, "Not valid JSON: " + e.message))];
    }
    if (!Array.isArray(vals)) vals = [vals];
    return vals.map((v) => h("div", { class: "msg json" }, h("pre", {}, JSON.stringify(v, null, 2))));
  }
  if (kind === "ndjson") {
    return payload.split(/\r?\n/).filter((l) => l.length).map((l) => h("div", { class: "msg text" }, h("pre", {}, l)));
  }
  return payload.length ? [h("div", { class: "msg text" }, h("pre", {}, payload))] : [];
}

function appendRows(container, rows) {
  if (!rows.length) return;
  const stick = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
  container.append(...rows);
  while (container.childElementCount > MAX_ROWS) container.firstElementChild.remove();
  if (stick) container.scrollTop = container.scrollHeight;
}

function base64Bytes(s) {
  const bin = atob(s.replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// ---------- SSE over fetch ----------

function parseSseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let val = i < 0 ? "" : line.slice(i + 1);
    if (val.startsWith(" ")) val = val.slice(1);
    if (field === "event") event = val;
    else if (field === "data") data.push(val);
  }
  return { event, data: data.join("\n"), hasData: data.length > 0 };
}

// Reads an event stream; onEvent returning false stops reading.
async function readSse(body, onEvent) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf = (buf + dec.decode(value, { stream: true })).replace(/\r\n/g, "\n");
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = parseSseBlock(block);
      if (!ev.hasData && ev.event === "message") continue;
      if (onEvent(ev) === false) { reader.cancel().catch(() => {}); return; }
    }
  }
}

// ---------- view: one stream ----------

async function renderStream(root, r, ctx) {
  const name = r.name;
  setTitle(name);
  const v = {
    name, meta: null, kind: "binary", pageStart: r.params.get("offset") || "-1", nextOffset: null,
    upToDate: true, stack: [], pageBytes: new Uint8Array(0), internalNav: false, loadSeq: 0,
    live: false, liveGen: 0, abort: null, destroyed: false,
  };
  const parent = name.includes("/") ? name.slice(0, name.lastIndexOf("/") + 1) : "";
  const metaEl = h("dl", { id: "stream-meta", class: "meta" });
  const messages = h("div", { id: "messages", class: "messages", tabindex: "0", "aria-label": "Messages" });
  const pageInfo = h("p", { class: "muted mono small", id: "page-info" });
  const connState = h("span", { id: "conn-state", "aria-live": "polite", dataset: { state: "idle" } }, "Not following");
  const btn = (id, text, onclick, extra) => h("button", { type: "button", id, onclick, ...extra }, text);
  const older = btn("older", "◀ Older", () => { if (v.stack.length) navTo(v.stack.pop(), "older"); }, { disabled: true });
  const newer = btn("newer", "Newer ▶", () => { if (v.nextOffset) navTo(v.nextOffset, "push"); }, { disabled: true });
  const toStart = btn("to-start", "« Start", () => navTo("-1", "start"));
  const toTail = btn("to-tail", "Tail »", () => navTo("now", "push"));
  const offInput = h("input", { id: "offset-input", class: "mono", value: v.pageStart, spellcheck: "false", autocomplete: "off" });
  const jump = h("form", { class: "row inline", onsubmit: (e) => { e.preventDefault(); const o = offInput.value.trim(); if (o) navTo(o, "push"); } },
    h("label", { for: "offset-input" }, "Offset"), offInput, h("button", { type: "submit", id: "offset-go" }, "Go"));
  const liveBtn = btn("live-toggle", "Follow", () => (v.live ? pauseLive() : startLive()), { "aria-pressed": "false" });
  const download = btn("download-page", "Download page", () => {
    const blob = new Blob([v.pageBytes], { type: (v.meta && v.meta.content_type) || "application/octet-stream" });
    const ext = { json: ".json", ndjson: ".ndjson", text: ".txt", binary: ".bin" }[v.kind];
    const a = h("a", { href: URL.createObjectURL(blob), download: name.replace(/[\\/:*?"<>|]+/g, "_") + ext });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });

  // actions
  const appendBody = h("textarea", { id: "append-body", rows: 4, spellcheck: "false", class: "mono" });
  const appendForm = h("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); doAppend(); } },
    h("label", { for: "append-body" }, "Append a message"), appendBody,
    h("div", { class: "row" }, h("button", { type: "submit", id: "append-submit", class: "primary" }, "Append"),
      h("small", { class: "muted", id: "append-hint" })));
  appendBody.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); doAppend(); } });
  const forkName = h("input", { id: "fork-name", spellcheck: "false", autocomplete: "off", required: true, value: name + "-fork" });
  const forkOffset = h("input", { id: "fork-offset", class: "mono", spellcheck: "false", autocomplete: "off" });
  const forkForm = h("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); doFork(); } },
    h("label", { for: "fork-name" }, "Fork into new stream"), forkName,
    h("label", { for: "fork-offset" }, "Fork offset"), forkOffset,
    h("div", { class: "row" }, h("button", { type: "submit", id: "fork-submit" }, "Fork")));
  const closeBtn = btn("close-stream", "Close stream", doClose);
  const deleteBtn = btn("delete-stream", "Delete stream…", doDelete, { class: "danger" });

  root.append(
    h("nav", { class: "crumbs" }, h("a", { href: listHash("", "") }, "Streams"), parent ? [" / ", h("a", { href: listHash(parent, "") }, parent)] : null),
    h("h2", { class: "mono break" }, name),
    metaEl,
    h("div", { class: "row toolbar" }, toStart, older, newer, toTail, jump),
    h("div", { class: "row toolbar" }, liveBtn, connState, download),
    pageInfo, messages,
    h("section", { class: "actions" }, h("h3", {}, "Actions"),
      h("div", { class: "grid2" }, appendForm, forkForm),
      h("div", { class: "row" }, closeBtn, deleteBtn)));

  function setConn(state, text) {
    connState.dataset.state = state;
    connState.textContent = text || { idle: "Not following", connecting: "Connecting…", live: "Live", paused: "Paused", closed: "Stream closed", error: "Error" }[state];
    liveBtn.textContent = v.live ? "Pause" : "Follow";
    liveBtn.setAttribute("aria-pressed", v.live ? "true" : "false");
  }

  function updateNav() {
    older.disabled = !v.stack.length;
    newer.disabled = v.upToDate || !v.nextOffset;
  }

  async function loadMeta() {
    const m = await apiJson(BASE + "/__ds/streams/" + encodePath(name));
    v.meta = m;
    v.kind = contentKind(m.content_type);
    metaEl.replaceChildren();
    for (const [k, val] of Object.entries(m)) {
      let dd;
      if (k === "bytes") dd = `${humanBytes(val)} (${val} bytes)`;
      else if (k === "tail_offset" || k === "fork_offset") dd = mono(val ?? "–");
      else if (k === "fork_source" && val) dd = h("a", { href: streamHash(val) }, val);
      else if (k === "closed") dd = val ? badge("closed", "closed") : "no";
      else if (k === "expires_at") dd = val ? fmtTime(val) : "–";
      else if (k === "ttl_secs") dd = val === null || val === undefined ? "–" : val + " s";
      else dd = val === null || val === undefined ? "–" : typeof val === "object" ? JSON.stringify(val) : String(val);
      metaEl.append(h("div", {}, h("dt", {}, k), h("dd", { dataset: { field: k } }, dd)));
    }
    $("#append-hint", root).textContent = v.kind === "json"
      ? "One JSON value (an array appends each element). Ctrl+Enter sends."
      : `Sent as ${m.content_type}. Ctrl+Enter sends.`;
  }

  async function loadPage(off) {
    const seq = ++v.loadSeq;
    v.pageStart = off;
    offInput.value = off;
    pageInfo.textContent = "Loading…";
    const res = await api(streamUrl(name) + "?offset=" + encodeURIComponent(off));
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (seq !== v.loadSeq || v.destroyed) return;
    v.pageBytes = bytes;
    const next = res.headers.get("Stream-Next-Offset");
    if (next) v.nextOffset = next;
    v.upToDate = res.headers.has("Stream-Up-To-Date");
    const closed = res.headers.get("Stream-Closed") === "true";
    const payload = v.kind === "binary" ? bytes : new TextDecoder().decode(bytes);
    const rows = messageRows(v.kind, payload);
    messages.replaceChildren(...rows);
    messages.scrollTop = 0;
    pageInfo.textContent = `from ${off} · ${humanBytes(bytes.length)} · ${rows.length} row${rows.length === 1 ? "" : "s"}` +
      (v.nextOffset ? ` · next ${v.nextOffset}` : "") + (v.upToDate ? " · up to date" : " · more available") + (closed ? " · closed" : "");
    if (!rows.length) pageInfo.textContent += " · no messages" + (off === "now" ? " (waiting for new data; use Follow)" : "");
    forkOffset.value = off !== "-1" && off !== "now" ? off : v.nextOffset || off;
    updateNav();
  }

  // navigation: kind = "push" | "older" | "start" | "refresh"
  function navTo(off, kind) {
    stopLive();
    if (kind === "push" && off !== v.pageStart) v.stack.push(v.pageStart);
    if (kind === "start") v.stack = [];
    updateNav();
    const target = streamHash(name, off);
    if (location.hash === target) { loadPage(off).catch(showError); return; }
    v.internalNav = true;
    location.hash = target;
  }

  ctx.update = async (r2) => {
    const off = r2.params.get("offset") || "-1";
    if (!v.internalNav) { // browser back/forward inside this stream
      stopLive();
      if (v.stack.length && v.stack[v.stack.length - 1] === off) v.stack.pop();
      else if (off !== v.pageStart) v.stack.push(v.pageStart);
    }
    v.internalNav = false;
    clearError();
    await loadPage(off);
  };

  // ----- live follow -----
  function startLive() {
    if (!v.live) { v.live = true; liveLoop(++v.liveGen); }
  }

  function pauseLive() {
    if (!v.live) return;
    v.live = false;
    v.liveGen++;
    if (v.abort) v.abort.abort();
    setConn("paused");
  }

  function stopLive() {
    const was = v.live;
    v.live = false;
    v.liveGen++;
    if (v.abort) v.abort.abort();
    if (was || connState.dataset.state !== "idle") setConn("idle");
  }

  async function liveLoop(gen) {
    let backoff = 500;
    const alive = () => v.live && v.liveGen === gen && !v.destroyed;
    while (alive()) {
      const ctrl = new AbortController();
      v.abort = ctrl;
      setConn("connecting");
      let closed = false;
      try {
        const off = v.nextOffset || "now";
        const res = await fetch(streamUrl(name) + "?offset=" + encodeURIComponent(off) + "&live=sse", {
          headers: authHeaders({ Accept: "text/event-stream" }), signal: ctrl.signal, cache: "no-store",
        });
        if (res.status === 401) openTokenDialog();
        if (!res.ok) throw await problemOf(res);
        if (!alive()) break;
        setConn("live");
        if (v.liveErr && $("#error").textContent === v.liveErr) clearError();
        const b64 = (res.headers.get("Stream-SSE-Data-Encoding") || "").toLowerCase() === "base64";
        // Data is shown only together with the control event that follows it, so an abort
        // between them can neither lose nor duplicate a message on resume.
        let pending = [];
        await readSse(res.body, (ev) => {
          if (!alive()) return false;
          if (ev.event === "data") {
            // ndjson and charset'ed non-text types arrive base64 too: show them as text
            const bytes = b64 && base64Bytes(ev.data);
            pending.push(!b64 ? ev.data : v.kind === "binary" ? bytes : new TextDecoder().decode(bytes));
          } else if (ev.event === "control") {
            const c = JSON.parse(ev.data);
            for (const p of pending) appendRows(messages, messageRows(v.kind, p));
            pending = [];
            if (c.streamNextOffset) { v.nextOffset = c.streamNextOffset; forkOffset.value = forkOffset.value || c.streamNextOffset; }
            if (c.upToDate) v.upToDate = true;
            updateNav();
            if (c.streamClosed) { closed = true; return false; }
          }
          return true;
        });
        backoff = 500;
        if (closed && alive()) { v.live = false; setConn("closed"); loadMeta().catch(showError); break; }
        if (alive()) await sleep(250);
      } catch (e) {
        if (!alive() || ctrl.signal.aborted) break;
        showError(e);
        v.liveErr = $("#error").textContent;
        const fatal = e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429;
        if (fatal) { v.live = false; setConn("error", "Error: " + e.message); break; }
        setConn("error", `Error, retrying in ${(backoff / 1000).toFixed(1)} s`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  // ----- actions -----
  async function doAppend() {
    if (!v.meta) return;
    try {
      await api(streamUrl(name), { method: "POST", headers: { "Content-Type": v.meta.content_type }, body: appendBody.value });
      appendBody.value = "";
      notice("Appended to " + name);
      clearError();
      await loadMeta();
      if (!v.live) {
        const off = v.pageStart === "now" && v.nextOffset ? v.nextOffset : v.pageStart;
        if (off === v.pageStart) await loadPage(off); else navTo(off, "refresh");
      }
    } catch (e) { showError(e); }
  }

  async function doClose() {
    if (!v.meta) return;
    try {
      await api(streamUrl(name), { method: "POST", headers: { "Content-Type": v.meta.content_type, "Stream-Closed": "true" } });
      notice("Closed " + name);
      clearError();
      await loadMeta();
    } catch (e) { showError(e); }
  }

  async function doFork() {
    const target = forkName.value.trim().replace(/^\/+/, "");
    if (!target) { forkName.focus(); return; }
    const hdrs = { "Stream-Forked-From": BASE + "/" + encodePath(name) };
    if (v.meta) hdrs["Content-Type"] = v.meta.content_type;
    if (forkOffset.value.trim()) hdrs["Stream-Fork-Offset"] = forkOffset.value.trim();
    try {
      await api(streamUrl(target), { method: "PUT", headers: hdrs });
      clearError();
      notice("Forked into " + target);
      $("#notice").append(" — ", h("a", { href: streamHash(target) }, "open"));
      await loadMeta();
    } catch (e) { showError(e); }
  }

  async function doDelete() {
    if (!(await confirmDialog(`Delete stream "${name}"? This cannot be undone.`))) return;
    try {
      stopLive();
      await api(streamUrl(name), { method: "DELETE" });
      notice("Deleted " + name);
      location.hash = listHash(parent, "");
    } catch (e) { showError(e); }
  }

  ctx.cleanup = () => { v.destroyed = true; stopLive(); };

  await loadMeta();
  await loadPage(v.pageStart);
}

// ---------- view: new stream ----------

async function renderNew(root) {
  setTitle("New stream");
  const types = ["application/json", "text/plain", "application/octet-stream", "application/x-ndjson"];
  const name = h("input", { id: "create-name", required: true, spellcheck: "false", autocomplete: "off", placeholder: "e.g. chat/room-1" });
  const type = h("select", { id: "create-type" }, types.map((t) => h("option", { value: t }, t)), h("option", { value: "" }, "Other…"));
  const other = h("input", { id: "create-type-other", placeholder: "content type, e.g. text/csv", hidden: true, "aria-label": "Other content type" });
  type.addEventListener("change", () => { other.hidden = type.value !== ""; if (!other.hidden) other.focus(); });
  const ttl = h("input", { id: "create-ttl", type: "number", min: "1", step: "1", inputmode: "numeric", placeholder: "optional" });
  const body = h("textarea", { id: "create-body", rows: 5, class: "mono", spellcheck: "false", placeholder: "optional initial content" });
  const form = h("form", { class: "stack narrow", onsubmit: async (e) => {
    e.preventDefault();
    const n = name.value.trim().replace(/^\/+/, "");
    const ct = type.value || other.value.trim();
    if (!n) { name.focus(); return; }
    if (!ct) { other.focus(); return; }
    const hdrs = { "Content-Type": ct };
    if (ttl.value.trim()) hdrs["Stream-TTL"] = ttl.value.trim();
    try {
      await api(streamUrl(n), { method: "PUT", headers: hdrs, body: body.value || undefined });
      clearError();
      notice("Created " + n);
      location.hash = streamHash(n);
    } catch (err) { showError(err); }
  } },
  h("label", { for: "create-name" }, "Name"), name,
  h("label", { for: "create-type" }, "Content type"), type, other,
  h("label", { for: "create-ttl" }, "TTL (seconds)"), ttl,
  h("label", { for: "create-body" }, "Initial body"), body,
  h("div", { class: "row" }, h("button", { type: "submit", id: "create-submit", class: "primary" }, "Create")));
  root.append(h("h2", {}, "New stream"), form);
  name.focus();
}

// ---------- views: subscriptions ----------

async function renderSubscriptions(root) {
  setTitle("Subscriptions");
  const tbody = h("tbody");
  root.append(h("h2", {}, "Subscriptions"), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["ID", "Type", "Pattern", "Streams", "Status"].map((t) => h("th", { scope: "col" }, t)))), tbody)));
  const data = await apiJson(BASE + "/__ds/subscriptions");
  const subs = data.subscriptions || [];
  if (!subs.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No subscriptions.")));
  for (const s of subs) {
    const href = "#/subscription/" + encodeURIComponent(s.id);
    tbody.append(h("tr", { class: "clickable", dataset: { subscription: s.id }, onclick: (e) => { if (!e.target.closest("a")) location.hash = href; } },
      h("td", {}, h("a", { href, class: "mono" }, s.id)),
      h("td", {}, s.type || ""),
      h("td", {}, s.pattern ? mono(s.pattern) : "–"),
      h("td", { class: "num" }, String((s.streams || []).length)),
      h("td", {}, badge(s.status || "?", s.status === "failed" ? "closed" : "ok"))));
  }
}

function dl(pairs) {
  return h("dl", { class: "meta" }, pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "–" : v))));
}

async function renderSubscription(root, r) {
  const id = r.id;
  setTitle("Subscription " + id);
  root.append(h("nav", { class: "crumbs" }, h("a", { href: "#/subscriptions" }, "Subscriptions")), h("h2", { class: "mono break" }, id));
  const s = await apiJson(BASE + "/__ds/subscriptions/" + encodeURIComponent(id));
  const webhook = s.webhook ? Object.entries(s.webhook).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("\n") : null;
  root.append(h("h3", {}, "Configuration"), dl([
    ["type", s.type], ["status", badge(s.status || "?", s.status === "failed" ? "closed" : "ok")],
    ["pattern", s.pattern ? mono(s.pattern) : null], ["description", s.description],
    ["webhook", webhook ? h("pre", { class: "inline" }, webhook) : null],
    ["wake_stream", s.wake_stream ? h("a", { href: streamHash(s.wake_stream) }, s.wake_stream) : null],
    ["lease_ttl_ms", s.lease_ttl_ms], ["created_at", s.created_at ? fmtTime(s.created_at) : null], ["generation", s.generation],
  ]));
  const rows = (s.streams || []).map((st) => h("tr", {},
    h("td", {}, h("a", { href: streamHash(st.path) }, st.path)), h("td", {}, st.link_type || ""), h("td", {}, mono(st.acked_offset ?? "–"))));
  root.append(h("h3", {}, "Streams"), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Path", "Link type", "Acked offset"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No streams."))))));
  root.append(h("h3", {}, "Pending wake"));
  if (s.wake) {
    const snap = (s.wake.snapshot || []).map((x) => `${x.path} @ ${x.offset}`).join("\n");
    root.append(dl([["wake_id", mono(s.wake.wake_id)], ["holder", s.wake.holder], ["lease until", s.wake.lease_until ? fmtTime(s.wake.lease_until) : null],
      ["delivered", s.wake.delivered ? "yes" : "no"], ["snapshot", snap ? h("pre", { class: "inline" }, snap) : null]]));
  } else root.append(h("p", { class: "muted" }, "None."));
  root.append(h("h3", {}, "Retry"));
  if (s.retry) root.append(dl([["attempt", s.retry.attempt], ["next attempt at", s.retry.next_attempt_at ? fmtTime(s.retry.next_attempt_at) : null]]));
  else root.append(h("p", { class: "muted" }, "None."));
  root.append(h("details", {}, h("summary", {}, "Raw JSON"), h("pre", {}, JSON.stringify(s, null, 2))));
  root.append(h("div", { class: "row actions" }, h("button", { type: "button", id: "delete-subscription", class: "danger", onclick: async () => {
    if (!(await confirmDialog(`Delete subscription "${id}"?`))) return;
    try {
      await api(BASE + "/__ds/subscriptions/" + encodeURIComponent(id), { method: "DELETE" });
      notice("Deleted subscription " + id);
      location.hash = "#/subscriptions";
    } catch (e) { showError(e); }
  } }, "Delete subscription…")));
}

// ---------- view: server ----------

function parseMetrics(text) {
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

function sparkline(values) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 120, H = 28;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "spark");
  const pts = values.filter((x) => x !== null && !isNaN(x));
  if (pts.length > 1) {
    const max = Math.max(...pts), min = Math.min(0, ...pts);
    const span = max - min || 1;
    const step = W / (SPARK_POINTS - 1);
    const off = SPARK_POINTS - pts.length;
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute("points", pts.map((y, i) => `${((i + off) * step).toFixed(1)},${(H - 2 - ((y - min) / span) * (H - 4)).toFixed(1)}`).join(" "));
    svg.append(line);
  }
  return svg;
}

async function renderServer(root, r, ctx) {
  setTitle("Server");
  const c = config || {};
  const p = c.plugin || {};
  root.append(h("h2", {}, "Server"), h("div", { id: "server-info" }, dl([
    ["server version", c.version], ["auth mode", c.auth_mode], ["base path", c.base_path ? mono(c.base_path) : null],
    ["plugin", p.name], ["plugin version", p.version], ["plugin mode", p.mode], ["ABI version", p.abi_version],
    ["capabilities", (c.capabilities || []).length ? h("span", { class: "caps" }, c.capabilities.map((x) => badge(x))) : null],
  ])));
  const figs = [
    ["fig-appends", "Appends / s", (x) => x.toFixed(1)],
    ["fig-bytes", "Bytes / s", (x) => humanBytes(x) + "/s"],
    ["fig-live", "Live connections", (x) => String(Math.round(x))],
    ["fig-streams", "Streams", (x) => String(Math.round(x))],
  ].map(([id, label, fmt]) => {
    const num = h("span", { class: "fig-value mono" }, "–");
    const box = h("div", { class: "fig-spark" }, sparkline([]));
    return { id, fmt, num, box, samples: [], el: h("div", { class: "fig", id }, h("div", { class: "fig-label" }, label), num, box) };
  });
  const status = h("p", { class: "muted", id: "metrics-status" }, "Polling /metrics every 2 s…");
  root.append(h("h3", {}, "Live figures"), h("div", { class: "figs" }, figs.map((f) => f.el)), status);

  let prev = null, timer = 0, stopped = false;
  ctx.cleanup = () => { stopped = true; clearInterval(timer); };
  const push = (f, val) => {
    f.samples.push(val);
    if (f.samples.length > SPARK_POINTS) f.samples.shift();
    f.num.textContent = val === null ? "–" : f.fmt(val);
    f.box.replaceChildren(sparkline(f.samples));
  };
  async function poll() {
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
    const cur = { t: now, msgs: m.ds_appended_messages_total ?? 0, bytes: m.ds_appended_bytes_total ?? 0 };
    const dt = prev ? (now - prev.t) / 1000 : 0;
    push(figs[0], prev && dt > 0 ? Math.max(0, (cur.msgs - prev.msgs) / dt) : null);
    push(figs[1], prev && dt > 0 ? Math.max(0, (cur.bytes - prev.bytes) / dt) : null);
    push(figs[2], (m.ds_live_sse_connections ?? 0) + (m.ds_live_long_poll_connections ?? 0));
    push(figs[3], m.ds_streams ?? 0);
    prev = cur;
    status.textContent = "Updated " + new Date().toLocaleTimeString();
    status.className = "muted";
  }
  await poll();
  if (!stopped && status.className !== "warn") timer = setInterval(poll, 2000);
}

// ---------- boot ----------

function setupDialogs() {
  const d = document.getElementById("token-dialog");
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("#token-input").value.trim();
    setToken(t);
    d.close();
    notice(t ? "Token saved" : "Token cleared");
    route(true);
  });
  $("#token-forget").addEventListener("click", () => {
    setToken("");
    $("#token-input").value = "";
    d.close();
    notice("Token forgotten");
    route(true);
  });
  $("#token-cancel").addEventListener("click", () => d.close());
  $("#token-button").addEventListener("click", openTokenDialog);
  const c = document.getElementById("confirm");
  $("#confirm-yes").addEventListener("click", () => c.close("yes"));
  $("#confirm-no").addEventListener("click", () => c.close("no"));
}

function setupKeys() {
  document.addEventListener("keydown", (e) => {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const p = document.getElementById("prefix");
    if (p && document.body.dataset.view === "streams") { e.preventDefault(); p.focus(); p.select(); }
  });
}

async function boot() {
  setupDialogs();
  setupKeys();
  try {
    config = await apiJson("config.json");
    if (config.base_path) BASE = config.base_path.replace(/\/+$/, "");
  } catch (e) {
    showError(e);
    config = null;
  }
  document.body.dataset.ready = "1";
  if (config && config.auth_mode === "token" && !getToken()) openTokenDialog();
  window.addEventListener("hashchange", () => route());
  await route();
  if (config === null) showError("Could not load config.json; assuming base path " + BASE);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
