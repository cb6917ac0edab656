// Shared by every view: element building, names and links, offsets, formatting, the API with
// the visitor's token, and where messages go (beside the form that caused them, or the top).
// Holds no view state.

export const ctx = { config: null, base: "/v1/stream", whoami: null };

export const $ = (sel, root = document) => root.querySelector(sel);

export function h(tag, attrs, ...children) {
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

// ---------- names and links ----------

// A stream name as a URL path. Names the server would refuse (empty, "." or ".." segments, the
// reserved "__ds/" control prefix) are refused here too, so that no crafted link can make a
// stream action reach another URL (the browser resolves dot segments before sending).
export function encodePath(name) {
  const segs = String(name).split("/");
  if (name === "__ds" || name.startsWith("__ds/") || segs.some((s) => s === "" || s === "." || s === "..")) {
    throw new Error("not a stream name: " + JSON.stringify(name));
  }
  return segs.map(encodeURIComponent).join("/");
}
export const streamUrl = (name) => ctx.base + "/" + encodePath(name);
export const streamHash = (name, offset) =>
  "#/stream/" + encodeURIComponent(name) + (offset !== undefined && offset !== null ? "?offset=" + encodeURIComponent(offset) : "");
export function listHash(prefix, after, extra) {
  const q = new URLSearchParams();
  if (prefix) q.set("prefix", prefix);
  if (after) q.set("after", after);
  for (const [k, v] of Object.entries(extra || {})) if (v) q.set(k, v);
  const s = q.toString().replace(/\+/g, "%20");
  return "#/streams" + (s ? "?" + s : "");
}
// A name as typed by a person: a full URL or path of a stream, or the name itself.
export function nameFromInput(text) {
  let t = String(text || "").trim();
  try { if (/^https?:\/\//i.test(t)) t = decodeURIComponent(new URL(t).pathname); } catch { /* as typed */ }
  if (t.startsWith(ctx.base + "/")) t = t.slice(ctx.base.length + 1);
  return t.replace(/^\/+/, "");
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- offsets ----------

// This server's offsets are "0000000000000000_" and a 16-digit byte position.
const OFFSET_RE = /^(\d{16})_(\d{16})$/;
export function offsetPosition(off) {
  const m = OFFSET_RE.exec(off || "");
  return m ? Number(m[2]) : null;
}
export const formatOffset = (pos) => "0000000000000000_" + String(pos).padStart(16, "0");
// An offset for people: its position, the rest in the title.
export function offsetCell(off) {
  const pos = offsetPosition(off);
  return h("code", { class: "mono offset", title: off || "" }, pos === null ? off || "–" : pos.toLocaleString("en-US"));
}

// ---------- formatting ----------

export function humanBytes(n) {
  if (n === null || n === undefined || isNaN(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Number(n);
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}
export function fmtTime(s) {
  if (!s) return "–";
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString() + " (" + s + ")";
}
export function contentKind(ct) {
  const lc = (ct || "").toLowerCase();
  const base = lc.split(";")[0].trim();
  if (base === "application/json") return "json";
  if (base === "application/x-ndjson") return "ndjson";
  if (base.startsWith("text/") || lc.includes("charset=")) return "text";
  return "binary";
}
export const mono = (text) => h("code", { class: "mono" }, text);
export const badge = (text, cls) => h("span", { class: "badge " + (cls || "") }, text);
export function setTitle(text) { document.title = text ? text + " · Durable Streams console" : "Durable Streams console"; }
export function dl(pairs) {
  return h("dl", { class: "meta" }, pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "–" : v))));
}

// ---------- errors and notices ----------

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${status} ${title}: ${detail}` : `${status} ${title}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

function messageOf(e) {
  let msg = e instanceof Error ? e.message : String(e);
  if (e instanceof TypeError && /fetch|network/i.test(msg)) msg = "Network error: " + msg;
  return msg;
}

// The page-wide error line, for what no form caused (a view that could not load).
export function showError(e) {
  const el = document.getElementById("error");
  const msg = e ? messageOf(e) : "";
  el.textContent = msg;
  el.hidden = !msg;
}
export const clearError = () => showError("");

// An error beside the form (or section) that caused it; empty clears it.
export function formError(form, e) {
  let el = form.querySelector(":scope > .form-error");
  if (!el) {
    el = h("p", { class: "form-error", role: "alert" });
    form.append(el);
  }
  const msg = e ? messageOf(e) : "";
  el.textContent = msg;
  el.hidden = !msg;
  if (msg) el.scrollIntoView({ block: "nearest" });
}

let noticeTimer = 0;
let noticeSurvives = false;
// A short success line at the top; `survive` keeps it over the navigation it leads to.
export function notice(msg, survive = false) {
  const el = document.getElementById("notice");
  el.replaceChildren(...(Array.isArray(msg) ? msg : [msg || ""]));
  el.hidden = !msg;
  noticeSurvives = survive;
  clearTimeout(noticeTimer);
  if (msg) noticeTimer = setTimeout(() => { el.hidden = true; }, 6000);
}
// On navigation: a notice from the previous page goes, unless it was meant for this one.
export function navigated() {
  if (noticeSurvives) noticeSurvives = false;
  else notice("");
}

export async function problemOf(res) {
  const text = await res.text().catch(() => "");
  let j = null;
  try { j = JSON.parse(text); } catch { /* not JSON */ }
  if (!j || typeof j !== "object") return new ApiError(res.status, res.statusText || "Error", text.trim().slice(0, 300));
  const e = (j.error && typeof j.error === "object" && j.error) || {};
  return new ApiError(res.status, j.title || e.code || res.statusText || "Error", j.detail || e.message || "");
}

// ---------- the token and the API ----------

// The token lives in this page's memory only: never in localStorage or sessionStorage, which
// any other page of this origin could read (a reload asks for it again). Earlier versions kept
// it in localStorage: wiped at start.
const TOKEN_KEY = "ds-console-token";
let consoleToken = "";
try { localStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled */ }
export const getToken = () => consoleToken;
export const setToken = (t) => { consoleToken = t || ""; };

export function authHeaders(extra) {
  const hdrs = new Headers(extra || {});
  const t = getToken();
  if (t) hdrs.set("Authorization", "Bearer " + t);
  return hdrs;
}

export function openTokenDialog() {
  const d = document.getElementById("token-dialog");
  if (d.open) return;
  $("#token-input").value = getToken();
  d.showModal();
  $("#token-input").focus();
}

// fetch with auth; throws ApiError on non-2xx (401 also opens the token dialog).
export async function api(url, opts = {}) {
  const res = await fetch(url, { cache: "no-store", ...opts, headers: authHeaders(opts.headers) });
  if (res.status === 401) openTokenDialog();
  if (!res.ok) throw await problemOf(res);
  return res;
}
export const apiJson = async (url, opts) => (await api(url, opts)).json();

// What the current credential may do on `name` (null when the server could not say).
export async function mayOn(name) {
  try {
    const w = await apiJson(ctx.base + "/__ds/whoami?name=" + encodeURIComponent(name));
    return w.may || null;
  } catch { return null; }
}

export function confirmDialog(message, yesLabel = "Delete") {
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

// Copies text; true when it was copied.
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h("textarea", { class: "offscreen" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}
