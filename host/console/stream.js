// The view of one stream: its metadata (kept current while following), pages of messages in
// the message table, live follow over SSE with pause and resume, and the actions (append, fork,
// close, delete) with their errors beside their forms. A missing stream says so and, for a
// credential that may create it, offers the create form. Owns no other view.

import {
  h, ctx, api, apiJson, authHeaders, problemOf, openTokenDialog, ApiError, streamUrl, streamHash, listHash, encodePath,
  humanBytes, fmtTime, contentKind, mono, badge, setTitle, formError, notice, confirmDialog, sleep, offsetPosition, formatOffset, mayOn,
} from "./util.js";
import { MessageTable, splitMessages } from "./messages.js";
import { createForm } from "./create.js";

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

function base64Bytes(s) {
  const bin = atob(s.replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// Where the appends in [start, start + len) began, when the engine can tell (null otherwise).
async function appendStarts(name, kind, start, len, state) {
  if (kind === "json" || kind === "ndjson" || start === null || !len || state.noRecords) return null;
  try {
    const q = "?offset=" + encodeURIComponent(formatOffset(start)) + "&limit=10000";
    const v = await apiJson(ctx.base + "/__ds/records/" + encodePath(name) + q);
    if (v.starts === null) { state.noRecords = true; return null; }
    return v.starts.map(offsetPosition).filter((p) => p !== null && p < start + len);
  } catch { return null; }
}

function metaList(m) {
  const el = h("dl", { id: "stream-meta", class: "meta" });
  for (const [k, val] of Object.entries(m)) {
    let dd;
    if (k === "bytes") dd = `${humanBytes(val)} (${val} bytes)`;
    else if (k === "tail_offset" || k === "fork_offset") dd = mono(val ?? "–");
    else if (k === "fork_source" && val) dd = h("a", { href: streamHash(val) }, val);
    else if (k === "closed") dd = val ? badge("closed", "closed") : "no";
    else if (k === "expires_at") dd = val ? fmtTime(val) : "–";
    else if (k === "ttl_secs") dd = val === null || val === undefined ? "–" : val + " s";
    else dd = val === null || val === undefined ? "–" : typeof val === "object" ? JSON.stringify(val) : String(val);
    el.append(h("div", {}, h("dt", {}, k), h("dd", { dataset: { field: k } }, dd)));
  }
  return el;
}

export async function renderStream(root, r, view) {
  const name = r.name;
  setTitle(name);
  const parent = name.includes("/") ? name.slice(0, name.lastIndexOf("/") + 1) : "";
  const crumbs = h("nav", { class: "crumbs" }, h("a", { href: listHash("", "") }, "Streams"), parent ? [" / ", h("a", { href: listHash(parent, "") }, parent)] : null);
  root.append(crumbs, h("h2", { class: "mono break" }, name));
  let meta;
  try {
    meta = await apiJson(ctx.base + "/__ds/streams/" + encodePath(name));
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
    return renderMissing(root, name);
  }
  return renderExisting(root, r, view, name, parent, meta);
}

async function renderMissing(root, name) {
  root.dataset.missing = "1";
  root.append(h("p", { id: "missing", class: "warn" }, `The stream "${name}" does not exist.`));
  const may = await mayOn(name);
  if (may && may.create) {
    root.append(h("h3", {}, "Create it"), createForm(name));
  } else {
    root.append(h("p", { class: "muted" }, may ? "The current token may not create it." : ""), h("p", {}, h("a", { href: listHash("", "") }, "Back to the streams")));
  }
}

async function renderExisting(root, r, view, name, parent, firstMeta) {
  const v = {
    meta: firstMeta, kind: contentKind(firstMeta.content_type), pageStart: r.params.get("offset") || "-1", nextOffset: null,
    upToDate: true, stack: [], pageBytes: new Uint8Array(0), internalNav: false, loadSeq: 0,
    live: false, liveGen: 0, abort: null, destroyed: false,
  };
  const table = new MessageTable();
  table.setKind(v.kind);
  // The filter is part of the view's URL (kept without reloading the page).
  table.onFilter = (text) => {
    const [path, query] = location.hash.split("?");
    const q = new URLSearchParams(query || "");
    if (text) q.set("filter", text); else q.delete("filter");
    const s = q.toString().replace(/\+/g, "%20");
    history.replaceState(null, "", path + (s ? "?" + s : ""));
  };
  if (r.params.get("filter")) table.setFilter(r.params.get("filter"));
  let metaEl = metaList(firstMeta);
  const pageInfo = h("p", { class: "muted mono small", id: "page-info" });
  const connState = h("span", { id: "conn-state", "aria-live": "polite", dataset: { state: "idle" } }, "Not following");
  const btn = (id, text, onclick, extra) => h("button", { type: "button", id, onclick, ...extra }, text);
  const older = btn("older", "◀ Older", () => { if (v.stack.length) navTo(v.stack.pop(), "older"); }, { disabled: true });
  const newer = btn("newer", "Newer ▶", () => { if (v.nextOffset) navTo(v.nextOffset, "push"); }, { disabled: true });
  const toStart = btn("to-start", "« Start", () => navTo("-1", "start"));
  const toTail = btn("to-tail", "Tail »", () => navTo("now", "push"));
  const offInput = h("input", { id: "offset-input", class: "mono", value: v.pageStart, spellcheck: "false", autocomplete: "off", title: "An offset, -1 (start), now (tail) or a byte position" });
  const jump = h("form", { class: "row inline", onsubmit: (e) => {
    e.preventDefault();
    let o = offInput.value.trim();
    if (/^\d+$/.test(o)) o = formatOffset(Number(o)); // a byte position, as shown in the table
    if (o) navTo(o, "push");
  } }, h("label", { for: "offset-input" }, "Offset"), offInput, h("button", { type: "submit", id: "offset-go" }, "Go"));
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
  const appendHint = h("small", { class: "muted", id: "append-hint" });
  const appendForm = h("form", { class: "stack", id: "append-form", onsubmit: (e) => { e.preventDefault(); doAppend(); } },
    h("label", { for: "append-body" }, "Append a message"), appendBody,
    h("div", { class: "row" }, h("button", { type: "submit", id: "append-submit", class: "primary" }, "Append"), appendHint));
  appendBody.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); doAppend(); } });
  const forkName = h("input", { id: "fork-name", spellcheck: "false", autocomplete: "off", required: true, value: name + "-fork" });
  // Follows the tail while following, until someone types an offset of their own.
  const forkOffset = h("input", { id: "fork-offset", class: "mono", spellcheck: "false", autocomplete: "off", oninput: () => { v.forkTyped = true; } });
  const forkForm = h("form", { class: "stack", id: "fork-form", onsubmit: (e) => { e.preventDefault(); doFork(); } },
    h("label", { for: "fork-name" }, "Fork into new stream"), forkName,
    h("label", { for: "fork-offset" }, "Fork offset"), forkOffset,
    h("div", { class: "row" }, h("button", { type: "submit", id: "fork-submit" }, "Fork")));
  const closeBtn = btn("close-stream", "Close stream", doClose);
  const deleteBtn = btn("delete-stream", "Delete stream…", doDelete, { class: "danger" });
  const lifeRow = h("div", { class: "row", id: "life-actions" }, closeBtn, deleteBtn);

  root.append(metaEl,
    h("div", { class: "row toolbar" }, toStart, older, newer, toTail, jump),
    h("div", { class: "row toolbar" }, liveBtn, connState, download),
    pageInfo, table.el,
    h("section", { class: "actions" }, h("h3", {}, "Actions"), h("div", { class: "grid2" }, appendForm, forkForm), lifeRow));

  function showMeta(m) {
    v.meta = m;
    const fresh = metaList(m);
    metaEl.replaceWith(fresh);
    metaEl = fresh;
    appendHint.textContent = v.kind === "json"
      ? "One JSON value (an array appends each element). Ctrl+Enter sends."
      : `Sent as ${m.content_type}. Ctrl+Enter sends.`;
    closeBtn.disabled = !!m.closed;
  }
  showMeta(firstMeta);

  // While following, what the control events say keeps the metadata current.
  function followMeta(next, closed) {
    const m = { ...v.meta };
    const pos = offsetPosition(next);
    if (next) m.tail_offset = next;
    if (pos !== null) m.bytes = pos;
    if (closed) m.closed = true;
    showMeta(m);
  }

  async function loadMeta() { showMeta(await apiJson(ctx.base + "/__ds/streams/" + encodePath(name))); }

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

  function summarize(off, closed) {
    const n = table.messages.length;
    pageInfo.textContent = `from ${off} · ${humanBytes(v.pageBytes.length)} · ${n} message${n === 1 ? "" : "s"}` +
      (v.nextOffset ? ` · next ${v.nextOffset}` : "") + (v.upToDate ? " · up to date" : " · more available") + (closed ? " · closed" : "") +
      (v.live ? " · following" : "");
    if (!n) pageInfo.textContent += " · no messages" + (off === "now" ? " (waiting for new data; use Follow)" : "");
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
    const nextPos = offsetPosition(next);
    const starts = await appendStarts(name, v.kind, nextPos === null ? null : nextPos - bytes.length, bytes.length, v);
    if (seq !== v.loadSeq || v.destroyed) return;
    table.replace(splitMessages(v.kind, bytes, nextPos, starts));
    summarize(off, closed);
    forkOffset.value = off !== "-1" && off !== "now" ? off : v.nextOffset || off;
    updateNav();
  }

  // navigation: kind = "push" | "older" | "start" | "refresh"
  function navTo(off, kind) {
    stopLive();
    if (kind === "push" && off !== v.pageStart) v.stack.push(v.pageStart);
    if (kind === "start") v.stack = [];
    updateNav();
    const f = table.filterInput.value;
    const target = streamHash(name, off) + (f ? "&filter=" + encodeURIComponent(f) : "");
    if (location.hash === target) { loadPage(off).catch((e) => formError(jump, e)); return; }
    v.internalNav = true;
    location.hash = target;
  }

  view.update = async (r2) => {
    const off = r2.params.get("offset") || "-1";
    if (!v.internalNav) { // browser back/forward inside this stream
      stopLive();
      if (v.stack.length && v.stack[v.stack.length - 1] === off) v.stack.pop();
      else if (off !== v.pageStart) v.stack.push(v.pageStart);
    }
    v.internalNav = false;
    const f = r2.params.get("filter") || "";
    if (f !== table.filterInput.value) table.setFilter(f);
    formError(jump, "");
    try { await loadPage(off); } catch (e) { formError(jump, e); }
  };

  // ----- live follow -----
  function startLive() { if (!v.live) { v.live = true; liveLoop(++v.liveGen); } }

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
    const liveRow = liveBtn.parentElement;
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
        formError(liveRow, "");
        const b64 = (res.headers.get("Stream-SSE-Data-Encoding") || "").toLowerCase() === "base64";
        // Data is shown only together with the control event that follows it, so an abort
        // between them can neither lose nor duplicate a message on resume.
        let pending = [];
        let shown = Promise.resolve();
        await readSse(res.body, (ev) => {
          if (!alive()) return false;
          if (ev.event === "data") {
            pending.push(b64 ? base64Bytes(ev.data) : new TextEncoder().encode(ev.data));
          } else if (ev.event === "control") {
            const c = JSON.parse(ev.data);
            const nextPos = offsetPosition(c.streamNextOffset);
            // Positions run backwards from the control event's offset over what it covers.
            let after = nextPos;
            const parts = [];
            for (let i = pending.length - 1; i >= 0; i--) {
              const bytes = pending[i];
              parts.unshift({ bytes, after });
              if (after !== null) after -= v.kind === "json" ? Math.max(bytes.length - 1, 0) : bytes.length;
            }
            pending = [];
            // Rows are added in order even when the boundaries are asked for.
            shown = shown.then(async () => {
              for (const p of parts) {
                const start = p.after === null ? null : p.after - p.bytes.length;
                const starts = await appendStarts(name, v.kind, start, p.bytes.length, v);
                if (!v.destroyed) table.add(splitMessages(v.kind, p.bytes, p.after, starts));
              }
              summarize(v.pageStart, false);
            });
            if (c.streamNextOffset) {
              v.nextOffset = c.streamNextOffset;
              if (!v.forkTyped) forkOffset.value = c.streamNextOffset;
            }
            if (c.upToDate) v.upToDate = true;
            if (c.upToDate || c.streamClosed) followMeta(c.streamNextOffset, c.streamClosed);
            summarize(v.pageStart, c.streamClosed);
            updateNav();
            if (c.streamClosed) { closed = true; return false; }
          }
          return true;
        });
        backoff = 500;
        if (closed && alive()) { v.live = false; setConn("closed"); loadMeta().catch((e) => formError(liveRow, e)); break; }
        if (alive()) await sleep(250);
      } catch (e) {
        if (!alive() || ctrl.signal.aborted) break;
        formError(liveRow, e);
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
    try {
      await api(streamUrl(name), { method: "POST", headers: { "Content-Type": v.meta.content_type }, body: appendBody.value });
      appendBody.value = "";
      formError(appendForm, "");
      notice("Appended to " + name);
      await loadMeta();
      if (!v.live) {
        const off = v.pageStart === "now" && v.nextOffset ? v.nextOffset : v.pageStart;
        if (off === v.pageStart) await loadPage(off); else navTo(off, "refresh");
      }
    } catch (e) { formError(appendForm, e); }
  }

  async function doClose() {
    try {
      await api(streamUrl(name), { method: "POST", headers: { "Content-Type": v.meta.content_type, "Stream-Closed": "true" } });
      formError(lifeRow, "");
      notice("Closed " + name);
      await loadMeta();
    } catch (e) { formError(lifeRow, e); }
  }

  async function doFork() {
    const target = forkName.value.trim().replace(/^\/+/, "");
    if (!target) { forkName.focus(); return; }
    const hdrs = { "Stream-Forked-From": ctx.base + "/" + encodePath(name), "Content-Type": v.meta.content_type };
    if (forkOffset.value.trim()) hdrs["Stream-Fork-Offset"] = forkOffset.value.trim();
    try {
      await api(streamUrl(target), { method: "PUT", headers: hdrs });
      formError(forkForm, "");
      notice(["Forked into " + target + " — ", h("a", { href: streamHash(target) }, "open")]);
      await loadMeta();
    } catch (e) { formError(forkForm, e); }
  }

  async function doDelete() {
    if (!(await confirmDialog(`Delete stream "${name}"? This cannot be undone.`))) return;
    try {
      stopLive();
      await api(streamUrl(name), { method: "DELETE" });
      notice("Deleted " + name, true);
      location.hash = listHash(parent, "");
    } catch (e) { formError(lifeRow, e); }
  }

  view.cleanup = () => { v.destroyed = true; stopLive(); };

  try { await loadPage(v.pageStart); } catch (e) { formError(jump, e); }
}

