// The job view: the task, its error, the stored response, the page sandboxed and its source.

import { api, rawBody } from "./api.js";
import { bytes, el, took } from "./format.js";

const HTML_TYPES = ["text/html", "application/xhtml+xml"];

function facts(pairs) {
  const list = el("dl", { class: "facts" });
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    list.append(el("dt", { text: name }), el("dd", { text: String(value) }));
  }
  return list;
}

function headersTable(headers) {
  const rows = Object.entries(headers).map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: v })));
  return el("details", {}, el("summary", { text: `Response headers (${rows.length})` }),
    el("table", {}, el("tbody", {}, ...rows)));
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

export async function openDetail(id, { onChange }) {
  const dialog = document.getElementById("detail");
  const body = document.getElementById("detail-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  const { status, body: payload } = await api("GET", `/queue_tasks/${encodeURIComponent(id)}`);
  if (status !== 200) {
    body.replaceChildren(el("p", { class: "error", text: payload?.error?.message || "cannot load this job" }));
    return;
  }
  const task = payload.task;
  const parts = [facts([["URL", task.url], ["Status", task.status], ["HTTP status", task.http_status],
    ["Attempts", task.attempts], ["Created", task.created_at], ["Took", took(task)], ["Id", task.id]])];
  if (task.error) parts.push(el("p", { class: "error", role: "alert", text: `${task.error.code}: ${task.error.message}` }));
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
    if (res.status === 200) {
      const result = res.body.result;
      buttons.append(el("button", { type: "button", text: "Download body", onclick: () => download(id) }));
      parts.push(facts([["Final URL", result.final_url], ["Redirects", result.redirects.map((r) => `${r.status} ${r.url}`).join(" → ")],
        ["Type", result.content_type], ["Encoding", result.encoding && `${result.encoding} (${result.encoding_source})`],
        ["Size", bytes(result.size)], ["Fetched in", `${result.elapsed_ms} ms`], ["SHA-256", result.sha256]]));
      parts.push(headersTable(result.headers), viewer(result));
    }
  }
  body.replaceChildren(buttons, ...parts);
}
