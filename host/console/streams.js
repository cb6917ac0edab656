// The streams view: a folder tree from the listing API's `delimiter=/` (folders and the streams
// directly under a prefix, page by page at any size), or a flat list of every name under it;
// sorting of a page by name, size or tail; breadcrumbs. When listing needs `admin` (a scoped
// token) it says so and offers to open a stream by name. Owns no other view.

import { h, ctx, apiJson, ApiError, streamHash, listHash, humanBytes, offsetCell, badge, setTitle, nameFromInput, openTokenDialog } from "./util.js";

const PAGE_LIMIT = 100;
const SORTS = { name: "Name", bytes: "Size", tail: "Tail offset" };

export function streamBadges(s) {
  const out = [];
  if (s.closed) out.push(badge("closed", "closed"));
  if (s.ttl_secs !== null && s.ttl_secs !== undefined) out.push(badge("TTL " + s.ttl_secs + "s", "ttl"));
  if (s.expires_at) out.push(h("span", { class: "badge ttl", title: s.expires_at }, "expires " + new Date(s.expires_at).toLocaleString()));
  if (s.fork_offset) out.push(badge("fork", "fork"));
  return out;
}

// A box that opens a stream by its name (or URL).
export function openByName(id, label) {
  const input = h("input", { id, type: "text", placeholder: "stream name, e.g. chat/room-1", autocomplete: "off", spellcheck: "false" });
  return h("form", { class: "row open-by-name", onsubmit: (e) => {
    e.preventDefault();
    const n = nameFromInput(input.value);
    if (n) location.hash = streamHash(n);
  } }, h("label", { for: id }, label), input, h("button", { type: "submit" }, "Open"));
}

function sorter(key, dir) {
  const k = (x) => (key === "name" ? x.key : key === "bytes" ? x.bytes ?? -1 : x.tail ?? -1);
  return (a, b) => {
    const va = k(a), vb = k(b);
    const c = va < vb ? -1 : va > vb ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    return dir === "desc" ? -c : c;
  };
}

export async function renderStreams(root, r, view) {
  const prefix = r.params.get("prefix") || "";
  const after = r.params.get("after") || "";
  const flat = r.params.get("flat") === "1";
  const [sortKey, sortDir] = (r.params.get("sort") || "name-asc").split("-");
  const here = (p, a, extra) => listHash(p, a, { flat: flat ? "1" : "", sort: r.params.get("sort") || "", ...extra });
  setTitle(prefix ? "Streams " + prefix : "Streams");
  let debounce = 0;
  const go = (p) => { clearTimeout(debounce); const target = here(p, ""); if (location.hash !== target) location.hash = target; };
  const input = h("input", {
    id: "prefix", type: "search", value: prefix, placeholder: "Filter by name prefix (press / to focus)",
    autocomplete: "off", spellcheck: "false",
    oninput: (e) => { clearTimeout(debounce); debounce = setTimeout(() => go(e.target.value), 300); },
  });
  view.cleanup = () => clearTimeout(debounce);
  const flatBox = h("input", { type: "checkbox", id: "flat", checked: flat, onchange: (e) => { location.hash = listHash(prefix, "", { flat: e.target.checked ? "1" : "", sort: r.params.get("sort") || "" }); } });
  const form = h("form", { class: "row search", role: "search", onsubmit: (e) => { e.preventDefault(); go(input.value); } },
    h("label", { for: "prefix" }, "Prefix"), input, h("button", { type: "submit" }, "Search"),
    h("label", { class: "check" }, flatBox, " every name (no folders)"));
  const crumbs = h("nav", { class: "crumbs", id: "crumbs", "aria-label": "Folder path" }, h("a", { href: here("", "") }, "all streams"));
  let acc = "";
  for (const seg of prefix.match(/[^/]*\/|[^/]+$/g) || []) {
    acc += seg;
    crumbs.append(" ", h("a", { href: here(acc, "") }, seg));
  }
  const sortButton = (key) => {
    const on = sortKey === key;
    const next = on && sortDir === "asc" ? "desc" : "asc";
    return h("button", {
      type: "button", class: "sort", dataset: { sort: key }, "aria-sort": on ? (sortDir === "asc" ? "ascending" : "descending") : null,
      title: "Sort this page by " + SORTS[key].toLowerCase(),
      onclick: () => { location.hash = listHash(prefix, after, { flat: flat ? "1" : "", sort: key + "-" + next }); },
    }, SORTS[key] + (on ? (sortDir === "asc" ? " ▲" : " ▼") : ""));
  };
  const tbody = h("tbody");
  const table = h("div", { class: "table-wrap" }, h("table", { class: "streams" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, sortButton("name")), h("th", { scope: "col" }, "Content type"),
      h("th", { scope: "col", class: "num" }, sortButton("bytes")), h("th", { scope: "col", class: "num" }, sortButton("tail")),
      h("th", { scope: "col" }, "Flags"))),
    tbody));
  const first = h("button", { type: "button", id: "first-page", disabled: !after, onclick: () => { location.hash = here(prefix, ""); } }, "First page");
  const next = h("button", { type: "button", id: "next-page", disabled: true }, "Next page");
  const status = h("span", { class: "muted", id: "list-status" });
  root.append(h("h2", {}, "Streams"), form, crumbs, table, h("div", { class: "row pager" }, first, next, status),
    h("p", {}, h("a", { href: "#/new" }, "Create a stream…")));
  if (view.prefixCaret !== null) { input.focus(); input.setSelectionRange(view.prefixCaret, view.prefixCaret); }

  const q = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  if (prefix) q.set("prefix", prefix);
  if (after) q.set("start_after", after);
  if (!flat) q.set("delimiter", "/");
  status.textContent = "Loading…";
  let data;
  try {
    data = await apiJson(ctx.base + "/__ds/streams?" + q);
  } catch (e) {
    status.textContent = "";
    first.parentElement.hidden = true;
    table.replaceWith(deniedOrFailed(e));
    return;
  }
  const rows = [];
  for (const f of data.common_prefixes || []) rows.push({ key: f.prefix, folder: true });
  for (const s of data.streams || []) rows.push({ key: s.name, s, bytes: s.bytes, tail: s.bytes });
  rows.sort(sorter(sortKey, sortDir));
  const nf = (data.common_prefixes || []).length, ns = (data.streams || []).length;
  status.textContent = (nf ? `${nf} folder${nf === 1 ? "" : "s"}, ` : "") + `${ns} stream${ns === 1 ? "" : "s"} on this page` + (after ? " (after " + after + ")" : "");
  if (!rows.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No streams" + (prefix ? " under this prefix" : "") + ".")));
  for (const row of rows) {
    if (row.folder) {
      const href = here(row.key, "");
      tbody.append(h("tr", { class: "clickable folder", dataset: { folder: row.key }, onclick: (e) => { if (!e.target.closest("a")) location.hash = href; } },
        h("td", {}, h("a", { href, class: "folder-link" }, h("span", { class: "icon", "aria-hidden": "true" }, "▸ "), row.key.slice(prefix.length))),
        h("td", { class: "muted" }, "folder"), h("td", {}), h("td", {}), h("td", {})));
      continue;
    }
    const s = row.s;
    const shown = flat ? s.name : s.name.slice(prefix.length);
    tbody.append(h("tr", {
      class: "clickable", dataset: { stream: s.name },
      onclick: (e) => { if (!e.target.closest("a")) location.hash = streamHash(s.name); },
    },
    h("td", {}, h("a", { href: streamHash(s.name), title: s.name }, shown)),
    h("td", {}, s.content_type || ""),
    h("td", { class: "num" }, humanBytes(s.bytes)),
    h("td", { class: "num" }, offsetCell(s.tail_offset)),
    h("td", {}, streamBadges(s))));
  }
  if (data.next_start_after) {
    next.disabled = false;
    next.onclick = () => { location.hash = here(prefix, data.next_start_after); };
  }
}

// What to show instead of the list when the listing was refused.
function deniedOrFailed(e) {
  if (e instanceof ApiError && e.status === 403) {
    return h("div", { id: "list-denied", class: "panel" },
      h("p", {}, "Listing streams needs a token with the ", h("code", {}, "admin"), " scope; the current one does not have it. ",
        "Streams it may read can still be opened by name:"),
      openByName("denied-open-name", "Stream"));
  }
  if (e instanceof ApiError && e.status === 401) {
    return h("div", { id: "list-denied", class: "panel" },
      h("p", {}, "This server needs an access token. "), h("button", { type: "button", id: "enter-token", onclick: openTokenDialog }, "Enter a token"),
      openByName("denied-open-name", "Or open a stream"));
  }
  return h("div", { id: "list-failed", class: "panel" }, h("p", { class: "form-error", role: "alert" }, "The streams could not be listed: " + e.message));
}
