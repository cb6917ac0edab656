// The message table of a stream view: a read's bytes split into messages (each JSON value of a
// JSON stream, each line of a text stream, each chunk of a binary one) with their offsets, one
// compact row each; expand (click, Enter), copy, filter (substring or a JSON path), and a row
// cap with "show more" so a large page never floods the page. Knows nothing of fetching.

import { h, formatOffset, offsetCell, humanBytes, copyText, notice } from "./util.js";

const ROW_STEP = 200; // rows shown at first and per "show more"
const MAX_KEPT = 20000; // messages kept while following (the oldest go)
const PREVIEW = 240; // characters of a row's preview
const MAX_HEX_ROWS = 4096;

const enc = new TextEncoder();
const dec = new TextDecoder();

// Splits what a read returned into messages. `nextPos` is the position after it (from
// Stream-Next-Offset), so each message's own position follows; null when unknown. `starts`,
// where the server could tell, are the positions where appends began: a text or binary stream
// is then split per append (else a text stream per line, a binary one per read).
export function splitMessages(kind, bytes, nextPos, starts) {
  if (kind === "json") return splitJson(bytes, nextPos);
  const start = nextPos === null ? null : nextPos - bytes.length;
  const at = (i) => (start === null ? null : start + i);
  if (starts && start !== null && kind !== "ndjson") {
    const cuts = starts.map((p) => p - start).filter((i) => i > 0 && i < bytes.length);
    const out = [];
    let from = 0;
    for (const c of [...cuts, bytes.length]) {
      if (c > from) out.push({ pos: at(from), bytes: bytes.subarray(from, c) });
      from = c;
    }
    return out;
  }
  if (kind === "binary") return bytes.length ? [{ pos: at(0), bytes }] : [];
  const out = [];
  let from = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) { out.push({ pos: at(from), bytes: bytes.subarray(from, i + 1) }); from = i + 1; }
  }
  if (from < bytes.length) out.push({ pos: at(from), bytes: bytes.subarray(from) });
  return out;
}

// A JSON read is "[" + the stored values, each followed by "," in storage, + "]": a value's
// position is the page's start plus its index in the body less one.
function splitJson(bytes, nextPos) {
  const out = [];
  if (bytes.length < 2) return out;
  const start = nextPos === null ? null : nextPos - (bytes.length - 1);
  let depth = 0, inStr = false, esc = false, from = 1;
  const push = (to) => {
    const raw = bytes.subarray(from, to);
    const text = dec.decode(raw).trim();
    if (!text) return;
    let value, bad = null;
    try { value = JSON.parse(text); } catch (e) { bad = e.message; }
    out.push({ pos: start === null ? null : start + from - 1, bytes: raw, value, bad });
  };
  for (let i = 1; i < bytes.length - 1; i++) {
    const c = bytes[i];
    if (inStr) {
      if (esc) esc = false;
      else if (c === 0x5c) esc = true;
      else if (c === 0x22) inStr = false;
    } else if (c === 0x22) inStr = true;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c && depth === 0) { push(i); from = i + 1; }
  }
  push(bytes.length - 1);
  return out;
}

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

const textOf = (m) => (m.text ??= dec.decode(m.bytes));

function previewOf(kind, m) {
  let s;
  if (kind === "binary") s = Array.from(m.bytes.subarray(0, 48), (b) => b.toString(16).padStart(2, "0")).join(" ") + (m.bytes.length > 48 ? " …" : "");
  else if (kind === "json" && !m.bad) s = JSON.stringify(m.value);
  else s = textOf(m).replace(/\r?\n$/, "");
  s = s.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === "\n" ? "⏎" : c === "\t" ? "⇥" : "·"));
  return s.length > PREVIEW ? s.slice(0, PREVIEW) + "…" : s;
}

// A filter: "$.a.b[0]" (the path exists) or "$.a == value" / ".a=value" on JSON streams, else a
// case-insensitive substring of the message.
export function compileFilter(kind, text) {
  const t = (text || "").trim();
  if (!t) return null;
  const path = /^(\$?\.[^=!<>]*?|\$)\s*(?:(==|=|!=)\s*(.*))?$/.exec(t);
  if (kind === "json" && path && (t.startsWith("$") || t.startsWith("."))) {
    const steps = [];
    const re = /\.([^.[\]]+)|\[(\d+)\]|\["([^"]*)"\]/g;
    let m;
    const p = path[1].replace(/^\$/, "");
    while ((m = re.exec(p))) steps.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : m[3]));
    let want;
    if (path[2]) { try { want = JSON.parse(path[3]); } catch { want = path[3]; } }
    return (msg) => {
      if (msg.bad) return false;
      let v = msg.value;
      for (const s of steps) {
        if (v === null || typeof v !== "object" || !(s in v)) return false;
        v = v[s];
      }
      if (!path[2]) return true;
      const eq = JSON.stringify(v) === JSON.stringify(want) || String(v) === String(want);
      return path[2] === "!=" ? !eq : eq;
    };
  }
  const needle = t.toLowerCase();
  return (msg) => (kind === "binary" ? previewOf(kind, msg) : textOf(msg)).toLowerCase().includes(needle);
}

export class MessageTable {
  constructor() {
    this.kind = "binary";
    this.messages = [];
    this.shown = ROW_STEP;
    this.filter = null;
    this.body = h("tbody");
    this.summary = h("span", { class: "muted", id: "rows-info" });
    this.more = h("button", { type: "button", id: "more-rows", hidden: true, onclick: () => { this.shown += ROW_STEP; this.render(); } }, "Show more");
    this.filterInput = h("input", {
      id: "msg-filter", type: "search", autocomplete: "off", spellcheck: "false",
      placeholder: "Filter rows: text, or a JSON path like $.status == \"paid\"",
      oninput: () => this.filterSoon(),
      onchange: () => this.filterSoon(),
    });
    this.scroller = h("div", { id: "messages", class: "messages table-wrap", tabindex: "-1" },
      h("table", { class: "msgs" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Offset"), h("th", { scope: "col", class: "num" }, "Size"), h("th", { scope: "col" }, "Message"))),
        this.body));
    this.el = h("div", { class: "msg-table" },
      h("div", { class: "row" }, h("label", { for: "msg-filter" }, "Filter"), this.filterInput),
      this.scroller, h("div", { class: "row" }, this.summary, this.more));
    this.body.addEventListener("keydown", (e) => this.onKey(e));
  }

  setKind(kind) { this.kind = kind; }

  filterSoon() {
    clearTimeout(this.t);
    this.t = setTimeout(() => this.setFilter(this.filterInput.value), 150);
  }

  setFilter(text) {
    if (this.filterInput.value !== text) this.filterInput.value = text;
    try { this.filter = compileFilter(this.kind, text); this.filterInput.setCustomValidity(""); }
    catch (e) { this.filter = null; this.filterInput.setCustomValidity(e.message); }
    this.shown = ROW_STEP;
    this.render();
    if (this.onFilter) this.onFilter(text);
  }

  replace(messages) {
    this.messages = messages;
    this.shown = ROW_STEP;
    this.render();
    this.scroller.scrollTop = 0;
  }

  // Messages that arrived while following: added at the end, the view kept at the bottom if it was.
  add(messages) {
    if (!messages.length) return;
    const stick = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 40;
    this.messages.push(...messages);
    if (this.messages.length > MAX_KEPT) this.messages.splice(0, this.messages.length - MAX_KEPT);
    const visible = this.visible();
    this.shown = Math.max(this.shown, Math.min(visible.length, this.shown + messages.length));
    this.render(visible);
    if (stick) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  visible() { return this.filter ? this.messages.filter(this.filter) : this.messages; }

  render(visible = this.visible()) {
    const rows = [];
    const upto = Math.min(visible.length, this.shown);
    for (let i = 0; i < upto; i++) rows.push(this.row(visible[i]));
    if (!visible.length) rows.push(h("tr", {}, h("td", { colspan: 3, class: "muted" }, this.messages.length ? "No message matches the filter." : "No messages.")));
    this.body.replaceChildren(...rows);
    const total = this.messages.length;
    this.summary.textContent = `${upto.toLocaleString("en-US")} of ${visible.length.toLocaleString("en-US")} row${visible.length === 1 ? "" : "s"} shown` +
      (this.filter ? ` (${total.toLocaleString("en-US")} loaded)` : "");
    this.more.hidden = upto >= visible.length;
    this.more.textContent = `Show ${Math.min(ROW_STEP, visible.length - upto)} more`;
  }

  row(m) {
    const off = m.pos === null ? null : formatOffset(m.pos);
    const tr = h("tr", {
      class: "mrow" + (m.bad ? " bad" : ""), tabindex: "0", "aria-expanded": "false",
      dataset: { offset: off || "" },
      onclick: (e) => { if (!e.target.closest("button,a")) this.toggle(tr, m); },
    },
    h("td", { class: "off" }, off ? offsetCell(off) : "–"),
    h("td", { class: "num" }, humanBytes(m.bytes.length)),
    h("td", { class: "preview" }, h("code", { class: "mono" }, previewOf(this.kind, m))));
    return tr;
  }

  toggle(tr, m) {
    const open = tr.getAttribute("aria-expanded") === "true";
    const next = tr.nextElementSibling;
    if (open) {
      if (next && next.classList.contains("detail")) next.remove();
      tr.setAttribute("aria-expanded", "false");
      return;
    }
    tr.setAttribute("aria-expanded", "true");
    tr.after(h("tr", { class: "detail" }, h("td", { colspan: 3 }, this.detail(m))));
  }

  detail(m) {
    const off = m.pos === null ? null : formatOffset(m.pos);
    const views = {};
    if (this.kind === "json" && !m.bad) views.Pretty = () => h("pre", { class: "pretty" }, JSON.stringify(m.value, null, 2));
    if (this.kind !== "binary") views.Text = () => h("pre", { class: "raw" }, textOf(m));
    views.Hex = () => h("div", { class: "hex" }, hexRows(m.bytes));
    const pane = h("div", { class: "pane" });
    const tabs = Object.keys(views).map((k) => h("button", {
      type: "button", class: "tab", dataset: { view: k.toLowerCase() },
      onclick: (e) => {
        tabs.forEach((b) => b.setAttribute("aria-pressed", b === e.currentTarget ? "true" : "false"));
        pane.replaceChildren(views[k]());
      },
    }, k));
    tabs[0].setAttribute("aria-pressed", "true");
    pane.append(views[Object.keys(views)[0]]());
    const copy = (what, text) => async () => notice((await copyText(text)) ? `Copied the ${what}` : `Could not copy the ${what}`);
    const body = this.kind === "json" && !m.bad ? JSON.stringify(m.value) : this.kind === "binary" ? Array.from(m.bytes, (b) => b.toString(16).padStart(2, "0")).join("") : textOf(m);
    return h("div", { class: "msg-detail" },
      h("div", { class: "row" }, tabs,
        h("button", { type: "button", class: "copy-msg", onclick: copy("message", body) }, "Copy message"),
        off ? h("button", { type: "button", class: "copy-offset", onclick: copy("offset", off) }, "Copy offset") : null,
        m.bad ? h("small", { class: "warn" }, "Not valid JSON: " + m.bad) : null),
      pane);
  }

  onKey(e) {
    const tr = e.target.closest("tr.mrow");
    if (!tr) return;
    const rows = () => Array.from(this.body.querySelectorAll("tr.mrow"));
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); tr.click(); }
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const all = rows();
      const i = all.indexOf(tr) + (e.key === "ArrowDown" ? 1 : -1);
      if (all[i]) all[i].focus();
    }
  }
}

export const encodeText = (s) => enc.encode(s);
