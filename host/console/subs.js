// The subscription views: the list, and one subscription (configuration, streams and their
// cursors, pending wake, retry) with delete. A wake stream is linked only once it exists (it
// is made at the first wake).

import { h, ctx, api, apiJson, ApiError, streamHash, encodePath, mono, badge, setTitle, fmtTime, dl, notice, formError, confirmDialog } from "./util.js";

export async function renderSubscriptions(root) {
  setTitle("Subscriptions");
  const tbody = h("tbody");
  root.append(h("h2", {}, "Subscriptions"), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["ID", "Type", "Pattern", "Streams", "Status"].map((t) => h("th", { scope: "col" }, t)))), tbody)));
  const data = await apiJson(ctx.base + "/__ds/subscriptions");
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

async function wakeStreamCell(name) {
  try {
    await apiJson(ctx.base + "/__ds/streams/" + encodePath(name));
    return h("a", { href: streamHash(name), id: "wake-stream-link" }, name);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return h("span", { id: "wake-stream-pending" }, mono(name), h("span", { class: "muted" }, " (made at the first wake)"));
    return mono(name);
  }
}

export async function renderSubscription(root, r) {
  const id = r.id;
  setTitle("Subscription " + id);
  root.append(h("nav", { class: "crumbs" }, h("a", { href: "#/subscriptions" }, "Subscriptions")), h("h2", { class: "mono break" }, id));
  const s = await apiJson(ctx.base + "/__ds/subscriptions/" + encodeURIComponent(id));
  const webhook = s.webhook ? Object.entries(s.webhook).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("\n") : null;
  root.append(h("h3", {}, "Configuration"), dl([
    ["type", s.type], ["status", badge(s.status || "?", s.status === "failed" ? "closed" : "ok")],
    ["pattern", s.pattern ? mono(s.pattern) : null], ["description", s.description],
    ["webhook", webhook ? h("pre", { class: "inline" }, webhook) : null],
    ["wake_stream", s.wake_stream ? await wakeStreamCell(s.wake_stream) : null],
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
  const actions = h("div", { class: "row actions" }, h("button", { type: "button", id: "delete-subscription", class: "danger", onclick: async () => {
    if (!(await confirmDialog(`Delete subscription "${id}"?`))) return;
    try {
      await api(ctx.base + "/__ds/subscriptions/" + encodeURIComponent(id), { method: "DELETE" });
      notice("Deleted subscription " + id, true);
      location.hash = "#/subscriptions";
    } catch (e) { formError(actions, e); }
  } }, "Delete subscription…"));
  root.append(actions);
}
