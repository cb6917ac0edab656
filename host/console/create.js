// Creating a stream: the form of the "New stream" view, also offered where a stream is missing.
// Its errors show beside it.

import { h, api, streamUrl, streamHash, notice, formError, setTitle, nameFromInput } from "./util.js";

const TYPES = ["application/json", "text/plain", "application/octet-stream", "application/x-ndjson"];

export function createForm(presetName) {
  const name = h("input", { id: "create-name", required: true, spellcheck: "false", autocomplete: "off", placeholder: "e.g. chat/room-1", value: presetName || "" });
  const type = h("select", { id: "create-type" }, TYPES.map((t) => h("option", { value: t }, t)), h("option", { value: "" }, "Other…"));
  const other = h("input", { id: "create-type-other", placeholder: "content type, e.g. text/csv", hidden: true, "aria-label": "Other content type" });
  type.addEventListener("change", () => { other.hidden = type.value !== ""; if (!other.hidden) other.focus(); });
  const ttl = h("input", { id: "create-ttl", type: "number", min: "1", step: "1", inputmode: "numeric", placeholder: "optional" });
  const body = h("textarea", { id: "create-body", rows: 5, class: "mono", spellcheck: "false", placeholder: "optional initial content" });
  const form = h("form", { class: "stack narrow", id: "create-form", onsubmit: async (e) => {
    e.preventDefault();
    const n = nameFromInput(name.value);
    const ct = type.value || other.value.trim();
    if (!n) { name.focus(); return; }
    if (!ct) { other.focus(); return; }
    const hdrs = { "Content-Type": ct };
    if (ttl.value.trim()) hdrs["Stream-TTL"] = ttl.value.trim();
    try {
      await api(streamUrl(n), { method: "PUT", headers: hdrs, body: body.value || undefined });
      formError(form, "");
      notice("Created " + n, true);
      const target = streamHash(n);
      if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
      else location.hash = target;
    } catch (err) { formError(form, err); }
  } },
  h("label", { for: "create-name" }, "Name"), name,
  h("label", { for: "create-type" }, "Content type"), type, other,
  h("label", { for: "create-ttl" }, "TTL (seconds)"), ttl,
  h("label", { for: "create-body" }, "Initial body"), body,
  h("div", { class: "row" }, h("button", { type: "submit", id: "create-submit", class: "primary" }, "Create")));
  return form;
}

export async function renderNew(root) {
  setTitle("New stream");
  const form = createForm("");
  root.append(h("h2", {}, "New stream"), form);
  form.querySelector("#create-name").focus();
}
