// The job view: the task, its options, its error, the stored response, the page sandboxed and its source
// or as Markdown (readable.js); and in a second tab the history of its URL (history.js).

import { api, canChange, capture, rawBody } from "./api.js";
import { jobDeliveries } from "./deliveries.js";
import { bytes, el, jobMarks, took } from "./format.js";
import { HistoryView } from "./history.js";
import { MarkdownView } from "./readable.js";
import { tabSet } from "./tabs.js";

export { noticeTask } from "./history.js";

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
  // The page's own styles may apply; its scripts, images, fonts and frames may not load: the preview
  // fetches nothing, runs nothing, and has an opaque origin (no access to this dashboard).
  const policy = "default-src 'none'; style-src 'unsafe-inline'";
  frame.srcdoc = `<meta http-equiv="Content-Security-Policy" content="${policy}">` + result.body;
  wrap.append(el("p", { class: "muted", text: "Preview: the page's inline styles apply; scripts, images, fonts, "
    + "frames and network requests are blocked." }));
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

const EXTENSIONS = { "text/html": "html", "application/json": "json", "text/plain": "txt", "text/css": "css",
  "application/xml": "xml", "text/xml": "xml", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif",
  "image/webp": "webp", "image/svg+xml": "svg", "application/pdf": "pdf" };

// A file name from the URL's last path segment, else the host; the extension from the content type.
export function fileName(url, contentType) {
  let base = "page";
  try {
    const parsed = new URL(url);
    base = decodeURIComponent(parsed.pathname.split("/").filter(Boolean).pop() || parsed.hostname);
  } catch { /* keep "page" */ }
  base = base.replace(/[^\w.-]+/g, "_").slice(0, 80) || "page";
  const ext = EXTENSIONS[contentType];
  return ext && !base.toLowerCase().endsWith(`.${ext}`) ? `${base}.${ext}` : base;
}

async function download(id, name) {
  const blob = await rawBody(id);
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// curl's timings, from the start of the request, as people name them.
const PHASES = [["namelookup", "DNS"], ["connect", "connect"], ["appconnect", "TLS"], ["starttransfer", "first byte"],
  ["total", "total"]];

function timings(t) {
  if (!t) return null;
  const shown = PHASES.filter(([key]) => t[key] != null && !(key === "appconnect" && !t[key]))
    .map(([key, label]) => `${label} ${Number(t[key]).toLocaleString()} ms`);
  return shown.length ? shown.join(" · ") : null;
}

const RENDER_PHASES = [["queued", "waited for a page"], ["navigation", "loaded"], ["waits", "waited"],
  ["capture", "captured"], ["total", "in all"]];

function renderTimings(t) {
  if (!t) return null;
  return RENDER_PHASES.filter(([key]) => t[key] != null)
    .map(([key, label]) => `${label} ${Number(t[key]).toLocaleString()} ms`).join(" · ") || null;
}

// A render's facts, its screenshot, and its PDF as a download (a button added to `buttons`).
async function rendered(id, result, buttons) {
  const section = el("section", { "aria-label": "render" }, el("h3", { text: "Render" }),
    facts([["Blocked requests", String(result.blocked_requests)], ["Render timings", renderTimings(result.render_timings)]]));
  const captured = result.captured || [];
  if (captured.includes("pdf")) {
    buttons.append(el("button", { type: "button", text: "Download PDF", onclick: async () => {
      const link = el("a", { href: URL.createObjectURL(await capture(id, "pdf")), download: `${id}.pdf` });
      link.click();
    } }));
  }
  if (captured.includes("screenshot")) {
    try {
      const img = el("img", { class: "preview screenshot", alt: `screenshot of ${result.final_url} as rendered` });
      img.src = URL.createObjectURL(await capture(id, "screenshot"));
      section.append(el("figure", {}, img, el("figcaption", { text: "Screenshot" })));
    } catch (error) {
      section.append(el("p", { class: "muted", text: `the screenshot cannot be shown (${error.message})` }));
    }
  }
  return section;
}

async function imagePreview(id, url) {
  const blob = await rawBody(id);
  const img = el("img", { class: "preview", alt: `the image fetched from ${url}` });
  img.src = URL.createObjectURL(blob);
  return el("figure", {}, img);
}

// A time in the reader's zone, with UTC on hover.
function local(iso) {
  return iso ? el("time", { datetime: iso, title: `${iso} (UTC)`, text: new Date(iso).toLocaleString() }) : null;
}

let shown = 0;  // the newest openDetail call: an older one still loading must not overwrite it
const last = { id: null, tab: "details", page: "preview" };  // a job shown again (after Retry, say) keeps its tabs

// The fetched page, shown as it is (Preview) or as Markdown: tabs, the Markdown fetched when first shown.
function pageTabs(id, preview) {
  if (last.id !== id) Object.assign(last, { id, tab: "details", page: "preview" });
  const markdown = new MarkdownView(id);
  const { list, panels } = tabSet("page", [{ key: "preview", name: "Preview", panel: el("div", {}, preview) },
    { key: "markdown", name: "Markdown", panel: markdown.root }], {
    selected: last.id === id ? last.page : "preview",
    onSelect: (key) => {
      Object.assign(last, { id, page: key });
      if (key === "markdown") markdown.load();
    },
  });
  return el("section", { class: "page-views", "aria-label": "the page" }, list, ...panels);
}

// A job opened by its address keeps the open tab in it (#/job/ID/history), so a reload shows it again.
function addressFor(id, tab) {
  const base = `#/job/${encodeURIComponent(id)}`;
  if (location.hash !== base && location.hash !== `${base}/history`) return;
  window.history.replaceState(null, "", tab === "history" ? `${base}/history` : base);
}

function jobTabs(id, task, details, tab) {
  const past = new HistoryView(task);
  const selected = tab || (last.id === id ? last.tab : "details");
  return tabSet("job", [{ key: "details", name: "Details", panel: details },
    { key: "history", name: "History", panel: past.root }], {
    selected,
    onSelect: (key) => {
      Object.assign(last, { id, tab: key });
      addressFor(id, key);
      if (key === "history") past.load();
    },
  });
}

export async function openDetail(id, { onChange, tab }) {
  const mine = ++shown;
  const dialog = document.getElementById("detail");
  const body = document.getElementById("detail-body");
  body.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  document.getElementById("detail-title").textContent = "Job";
  if (!dialog.open) dialog.showModal();
  const { status, body: payload } = await api("GET", `/queue_tasks/${encodeURIComponent(id)}`);
  if (mine !== shown) return;
  if (status !== 200) {
    body.replaceChildren(el("p", { class: "error", text: payload?.error?.message || "cannot load this job" }));
    return;
  }
  const task = payload.task;
  document.getElementById("detail-title").textContent = task.url;
  const parts = [facts([["Status", task.status], ["HTTP status", task.http_status],
    ["Attempts", task.attempts], ["Created", local(task.created_at)], ["Started", local(task.started_at)],
    ["Finished", local(task.finished_at)], ["Took", took(task)], ["Id", task.id],
    ["Priority", task.priority ?? 0], ["Not before", local(task.not_before)], ["Tags", jobMarks({ tags: task.tags })],
    ["Batch", task.batch_id && el("a", { href: `#/batch/${encodeURIComponent(task.batch_id)}`, text: task.batch_id,
      onclick: () => dialog.close() })],
    ["Reused from", task.reused_from && el("a", { href: `#/job/${encodeURIComponent(task.reused_from)}`,
      text: task.reused_from, onclick: (e) => { e.preventDefault(); openDetail(task.reused_from, { onChange }); } })],
    ["Rendered", task.render && el("span", { class: "badge rendered", text: "rendered in a browser" })]])];
  if (task.error) parts.push(el("p", { class: "error", role: "alert", text: `${task.error.code}: ${task.error.message}` }));
  if (task.attempt_log?.length) {
    parts.push(el("section", { "aria-label": "attempts" }, el("h3", { text: "Attempts" }),
      el("ol", { class: "attempts" }, ...task.attempt_log.map((a) => el("li", {},
        `Attempt ${a.attempt ?? "?"}, `, local(a.at), ` — ${a.outcome}`, a.http_status ? `, HTTP ${a.http_status}` : "",
        a.error ? `, ${a.error.code}: ${a.error.message}` : "")))));
  }
  if (task.fetch) parts.push(fetchOptions(task.fetch));
  const buttons = el("div", { class: "row" });
  const act = async (method, path) => {
    const r = await api(method, path);
    if (r.body?.task) { onChange(r.body.task); openDetail(id, { onChange }); }
  };
  if (!canChange()) {
    // a read-only token: it may look, not act
  } else if (task.status === "queued" || task.status === "running") {
    buttons.append(el("button", { type: "button", text: "Cancel", onclick: () => act("DELETE", `/queue_tasks/${id}`) }));
  } else {
    buttons.append(el("button", { type: "button", text: "Retry", onclick: () => act("POST", `/queue_tasks/${id}/retry`) }));
  }
  if (task.status === "completed") {
    const res = await api("GET", `/results/${encodeURIComponent(id)}`);
    if (mine !== shown) return;
    if (res.status === 200) {
      const result = res.body.result;
      const name = fileName(result.final_url, result.content_type);
      buttons.append(el("button", { type: "button", text: `Download ${name}`, onclick: () => download(id, name) }));
      const chain = result.redirects.length ? el("ol", { class: "redirects" },
        ...result.redirects.map((r) => el("li", { text: `${r.status} ${r.url}` })), el("li", { text: result.final_url }))
        : null;
      parts.push(facts([["Final URL", result.final_url], ["Redirects", chain],
        ["Type", result.content_type], ["Encoding", result.encoding && `${result.encoding} (${result.encoding_source})`],
        ["Size", bytes(result.size)], ["Fetched in", `${result.elapsed_ms} ms`], ["Timings", timings(result.timings)],
        ["SHA-256", result.sha256]]));
      if (result.rendered) parts.push(await rendered(id, result, buttons));
      parts.push(headersTable(result.headers));
      if ((result.content_type || "").startsWith("image/") && result.content_type !== "image/svg+xml") {
        parts.push(pageTabs(id, await imagePreview(id, result.final_url)));
      } else {
        parts.push(pageTabs(id, viewer(result)));
      }
    }
  }
  const sent = await jobDeliveries(id);
  if (mine !== shown) return;
  if (sent) parts.push(sent);
  const { list, panels } = jobTabs(id, task, el("div", { class: "job-details" }, buttons, ...parts), tab);
  body.replaceChildren(list, ...panels);
  // opened from a link inside the view itself, whose focus went with the old content: give it a place
  if (!dialog.contains(document.activeElement)) list.querySelector("[aria-selected=true]").focus();
}
