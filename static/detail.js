// The job view: the task, its options, its error, the stored response, the page sandboxed and its source.

import { api, rawBody } from "./api.js";
import { jobDeliveries } from "./deliveries.js";
import { bytes, el, jobMarks, took } from "./format.js";

const HTML_TYPES = ["text/html", "application/xhtml+xml"];

function facts(pairs) {
  const list = el("dl", { class: "facts" });
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    const dd = value instanceof Node ? el("dd", {}, value) : el("dd", { text: String(value) });
    list.append(el("dt", { text: name }), dd);
  }
  return list;
}

function headersTable(headers) {
  const rows = Object.entries(headers).map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: v })));
  return el("details", {}, el("summary", { text: `Response headers (${rows.length})` }),
    el("table", {}, el("tbody", {}, ...rows)));
}

// What the job asks for, as the API shows it: secret headers arrive as "***" and are shown as such.
function fetchOptions(fetch) {
  const orDefault = (value, shown = value) => (value === null || value === undefined ? "server default" : shown);
  const names = Object.keys(fetch.headers || {});
  const headers = names.length === 0 ? "none" : el("table", { class: "kv" }, el("tbody", {},
    ...names.map((name) => el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: fetch.headers[name] })))));
  return el("section", { class: "options", "aria-label": "fetch options" },
    el("h3", { text: "Fetch options" }),
    facts([["Method", fetch.method], ["Headers", headers],
      ["Body", fetch.body == null ? null : el("pre", { class: "snippet", text: fetch.body })],
      ["User agent", orDefault(fetch.user_agent)], ["Timeout", orDefault(fetch.timeout, `${fetch.timeout} s`)],
      ["Max bytes", orDefault(fetch.max_bytes, bytes(fetch.max_bytes))],
      ["Follow redirects", fetch.follow_redirects ? "yes" : "no"], ["Profile", fetch.profile ?? "none"]]));
}

// The fetched page is untrusted: an iframe with an empty sandbox (no scripts, opaque origin).
function viewer(result) {
  const wrap = el("div", { class: "viewer" });
  const source = el("pre", { tabindex: "0", "aria-label": "page source" });
  source.textContent = result.body ?? "";
  const isHtml = HTML_TYPES.includes(result.content_type);
  if (!isHtml || result.body == null) {
    wrap.append(result.body == null ? el("p", { class: "muted", text: "Binary body: use Download." }) : source);
    return wrap;
  }
  const frame = el("iframe", { sandbox: "", title: "fetched page (sandboxed)", referrerpolicy: "no-referrer" });
  frame.srcdoc = result.body;
  const toggle = el("button", { type: "button", "aria-pressed": "false", text: "Show source" });
  toggle.addEventListener("click", () => {
    const showing = toggle.getAttribute("aria-pressed") === "true";
    toggle.setAttribute("aria-pressed", String(!showing));
    toggle.textContent = showing ? "Show source" : "Show page";
    wrap.replaceChildren(toggle, showing ? frame : source);
  });
  wrap.append(toggle, frame);
  return wrap;
}

async function download(id) {
  const blob = await rawBody(id);
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: `${id}.body` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

let shown = 0;  // the newest openDetail call: an older one still loading must not overwrite it

export async function openDetail(id, { onChange }) {
  const mine = ++shown;
  const dialog = document.getElementById("detail");
  const body = document.getElementById("detail-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  const { status, body: payload } = await api("GET", `/queue_tasks/${encodeURIComponent(id)}`);
  if (mine !== shown) return;
  if (status !== 200) {
    body.replaceChildren(el("p", { class: "error", text: payload?.error?.message || "cannot load this job" }));
    return;
  }
  const task = payload.task;
  const parts = [facts([["URL", task.url], ["Status", task.status], ["HTTP status", task.http_status],
    ["Attempts", task.attempts], ["Created", task.created_at], ["Took", took(task)], ["Id", task.id],
    ["Priority", task.priority ?? 0], ["Not before", task.not_before], ["Tags", jobMarks({ tags: task.tags })],
    ["Batch", task.batch_id && el("a", { href: `#/batch/${encodeURIComponent(task.batch_id)}`, text: task.batch_id,
      onclick: () => dialog.close() })],
    ["Reused from", task.reused_from && el("a", { href: `#/job/${encodeURIComponent(task.reused_from)}`,
      text: task.reused_from, onclick: (e) => { e.preventDefault(); openDetail(task.reused_from, { onChange }); } })]])];
  if (task.error) parts.push(el("p", { class: "error", role: "alert", text: `${task.error.code}: ${task.error.message}` }));
  if (task.fetch) parts.push(fetchOptions(task.fetch));
  const buttons = el("div", { class: "row" });
  const act = async (method, path) => {
    const r = await api(method, path);
    if (r.body?.task) { onChange(r.body.task); openDetail(id, { onChange }); }
  };
  if (task.status === "queued" || task.status === "running") {
    buttons.append(el("button", { type: "button", text: "Cancel", onclick: () => act("DELETE", `/queue_tasks/${id}`) }));
  } else {
    buttons.append(el("button", { type: "button", text: "Retry", onclick: () => act("POST", `/queue_tasks/${id}/retry`) }));
  }
  if (task.status === "completed") {
    const res = await api("GET", `/results/${encodeURIComponent(id)}`);
    if (mine !== shown) return;
    if (res.status === 200) {
      const result = res.body.result;
      buttons.append(el("button", { type: "button", text: "Download body", onclick: () => download(id) }));
      parts.push(facts([["Final URL", result.final_url], ["Redirects", result.redirects.map((r) => `${r.status} ${r.url}`).join(" → ")],
        ["Type", result.content_type], ["Encoding", result.encoding && `${result.encoding} (${result.encoding_source})`],
        ["Size", bytes(result.size)], ["Fetched in", `${result.elapsed_ms} ms`], ["SHA-256", result.sha256]]));
      parts.push(headersTable(result.headers), viewer(result));
    }
  }
  const sent = await jobDeliveries(id);
  if (mine !== shown) return;
  if (sent) parts.push(sent);
  body.replaceChildren(buttons, ...parts);
}
