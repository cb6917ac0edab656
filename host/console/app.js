// Durable Streams console: boot, the hash router, the header (open a stream by name, the active
// token, the theme) and the dialogs. Each view lives in its own module; no build step.

import { h, $, ctx, apiJson, getToken, setToken, openTokenDialog, showError, clearError, notice, navigated, streamHash, nameFromInput, setTitle } from "./util.js";
import { renderStreams } from "./streams.js";
import { renderStream } from "./stream.js";
import { renderNew } from "./create.js";
import { renderSubscriptions, renderSubscription } from "./subs.js";
import { renderServer } from "./server.js";

const THEME_KEY = "ds-console-theme";
let current = null; // { key, cleanup(), update(params) }
let renderSeq = 0;

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
  current = { key, prefixCaret: ae && ae.id === "prefix" ? ae.selectionStart ?? 0 : null };
  clearError();
  navigated();
  delete document.body.dataset.view;
  const root = document.getElementById("app");
  root.replaceChildren();
  delete root.dataset.missing;
  setTitle("");
  try {
    await VIEWS[r.view](root, r, current);
  } catch (e) {
    if (seq === renderSeq) {
      showError(e);
      if (!root.childElementCount) root.append(h("p", { class: "muted" }, "This view could not be loaded."));
    }
  } finally {
    if (seq === renderSeq) document.body.dataset.view = r.view;
  }
}

// ---------- the header: who is signed in, the theme ----------

async function showWho() {
  const btn = $("#token-button");
  const info = $("#token-info");
  let w = null;
  if (!ctx.config || ctx.config.auth_mode !== "none" || getToken()) {
    try { w = await apiJson(ctx.base + "/__ds/whoami"); } catch { w = null; }
  } else {
    w = { kind: "anyone", scopes: ["*:all"] };
  }
  ctx.whoami = w;
  if (!w) {
    btn.textContent = getToken() ? "Token: not accepted" : "No token";
    btn.dataset.state = "none";
    info.replaceChildren(h("p", { class: "muted" }, getToken() ? "The server did not accept the current token." : "No token is set."));
    return;
  }
  if (w.kind === "anyone") {
    btn.textContent = "Open access";
    btn.dataset.state = "anyone";
    info.replaceChildren(h("p", { class: "muted" }, "This server asks for no token (auth mode none): every request may do everything."));
    return;
  }
  btn.textContent = "Token: " + (w.label || w.id);
  btn.dataset.state = "token";
  info.replaceChildren(h("dl", { class: "meta", id: "token-who" },
    h("div", {}, h("dt", {}, "id"), h("dd", { dataset: { field: "id" } }, w.id)),
    h("div", {}, h("dt", {}, "label"), h("dd", { dataset: { field: "label" } }, w.label || "–")),
    h("div", {}, h("dt", {}, "scopes"), h("dd", { dataset: { field: "scopes" } }, (w.scopes || []).join(" "))),
    h("div", {}, h("dt", {}, "expires"), h("dd", { dataset: { field: "expires" } }, w.expires_at || "never"))));
}

function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const b = $("#theme-toggle");
  const label = { light: "Light", dark: "Dark" }[theme] || "Auto";
  b.textContent = "Theme: " + label;
  b.dataset.theme = theme || "auto";
}

function setupHeader() {
  let theme = null;
  try { theme = localStorage.getItem(THEME_KEY); } catch { /* storage disabled */ }
  applyTheme(theme);
  $("#theme-toggle").addEventListener("click", () => {
    const order = ["auto", "light", "dark"];
    const now = $("#theme-toggle").dataset.theme || "auto";
    const next = order[(order.indexOf(now) + 1) % order.length];
    try { if (next === "auto") localStorage.removeItem(THEME_KEY); else localStorage.setItem(THEME_KEY, next); } catch { /* not kept */ }
    applyTheme(next);
  });
  $("#open-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const n = nameFromInput($("#open-name").value);
    if (!n) return;
    $("#open-name").value = "";
    location.hash = streamHash(n);
  });
}

function setupDialogs() {
  const d = document.getElementById("token-dialog");
  const done = async (msg) => {
    d.close();
    notice(msg, true);
    await showWho();
    route(true);
  };
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("#token-input").value.trim();
    setToken(t);
    done(t ? "Token saved" : "Token cleared");
  });
  $("#token-forget").addEventListener("click", () => {
    setToken("");
    $("#token-input").value = "";
    done("Token forgotten");
  });
  // Cancelling leaves the page as it was, usable: a view still loading finishes with what it has.
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
    const p = document.getElementById("prefix") || document.getElementById("open-name");
    e.preventDefault();
    p.focus();
    p.select();
  });
}

async function boot() {
  setupHeader();
  setupDialogs();
  setupKeys();
  try {
    ctx.config = await apiJson("config.json");
    if (ctx.config.base_path) ctx.base = ctx.config.base_path.replace(/\/+$/, "");
  } catch (e) {
    showError(e);
    ctx.config = null;
  }
  document.body.dataset.ready = "1";
  window.addEventListener("hashchange", () => route());
  if (ctx.config && ctx.config.auth_mode !== "none" && !getToken()) openTokenDialog();
  await showWho();
  await route();
  if (ctx.config === null) showError("Could not load config.json; assuming base path " + ctx.base);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
