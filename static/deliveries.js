// The webhook deliveries view (#/deliveries): failed ones first, then those waiting for their next try, then the
// delivered ones; each with its job as a link, its next try and its delivery time in columns of their own, and a
// Details button that shows the exact payload sent (GET /webhook_deliveries/:id) and what the receiver answered.
// It keeps itself current (a read every POLL_MS while shown, rows changed in place, focus kept), with no Refresh
// button. The list a job's view shows of its own deliveries is made of the same rows.

import { api, canChange } from "./api.js";
import { el } from "./format.js";
import { middle } from "./jobs.js";

const ORDER = ["failed", "pending", "delivered"];
const POLL_MS = 3000;
const BADGE = { delivered: "completed", failed: "failed", pending: "queued" };

// A time in the reader's zone (the time alone when it is today), the full date and UTC on hover.
export function when(iso) {
  if (!iso) return el("span", { class: "muted", text: "—" });
  const at = new Date(iso);
  const today = at.toDateString() === new Date().toDateString();
  return el("time", { datetime: iso, title: `${at.toLocaleString()} (${at.toISOString()} UTC)`,
    text: today ? at.toLocaleTimeString() : at.toLocaleString([], { dateStyle: "short", timeStyle: "short" }) });
}

// What the receiver said the last time: its HTTP status and the start of its answer, or why nothing came.
function lastAnswer(d) {
  const parts = [];
  if (d.last_http_status) parts.push(el("span", { class: d.last_http_status >= 300 ? "http bad-status" : "http good",
    text: `HTTP ${d.last_http_status}` }));
  // "the receiver answered HTTP 500: busy" beside "HTTP 500" says only "busy"
  const said = d.last_http_status ? (d.last_error || "").replace(/^the receiver answered HTTP \d+: ?/, "") : d.last_error;
  if (said) parts.push(el("span", { class: "error-text answer", text: said }));
  if (!parts.length) parts.push(el("span", { class: "muted", text: d.attempts ? "—" : "not sent yet" }));
  return el("div", { class: "answer-wrap" }, ...parts);
}

function jobLink(d) {
  if (d.task_id) return el("a", { href: `#/job/${encodeURIComponent(d.task_id)}`, class: "mono", text: d.task_id,
    "aria-label": `job ${d.task_id}` });
  if (d.batch_id) return el("a", { href: `#/batch/${encodeURIComponent(d.batch_id)}`, class: "mono",
    text: `batch ${d.batch_id}` });
  return el("span", { class: "muted", text: "—" });
}

// The payload as sent (pretty-printed when it is JSON) and the receiver's last answer, read when asked.
async function details(d) {
  const box = el("div", { class: "delivery-details" }, el("p", { class: "muted", text: "Reading the delivery…" }));
  const { status, body } = await api("GET", `/webhook_deliveries/${encodeURIComponent(d.id)}`);
  if (status !== 200) {
    box.replaceChildren(el("p", { class: "error", text: body?.error?.message || `the server answered ${status}` }));
    return box;
  }
  const sent = body.delivery;
  let payload = sent.body ?? "";
  try { payload = JSON.stringify(JSON.parse(payload), null, 2); } catch { /* shown as sent */ }
  box.replaceChildren(
    el("h4", { text: "Payload (the exact body signed and sent)" }),
    el("pre", { class: "payload", tabindex: "0", "aria-label": `payload of ${sent.type}`, text: payload }),
    el("h4", { text: "The receiver's last answer" }),
    el("dl", { class: "facts" },
      el("dt", { text: "Endpoint" }), el("dd", { class: "mono", text: sent.url }),
      el("dt", { text: "Attempts" }), el("dd", { text: String(sent.attempts) }),
      el("dt", { text: "HTTP status" }), el("dd", { text: sent.last_http_status ? String(sent.last_http_status) : "none" }),
      el("dt", { text: "Answer or error" }), el("dd", { text: sent.last_error || (sent.status === "delivered"
        ? "a 2xx answer (its body is not kept)" : "none yet") }),
      el("dt", { text: "Created" }), el("dd", {}, when(sent.created_at))));
  return box;
}

// One table row per delivery; `onRedeliver` is called after the server answered.
export function deliveryRow(d, { onRedeliver, withJob = true, columns }) {
  const redeliver = el("button", { type: "button", class: "plain", text: "Redeliver",
    "aria-label": `Redeliver ${d.type} to ${d.url}` });
  redeliver.addEventListener("click", async () => {
    redeliver.disabled = true;
    const { status, body } = await api("POST", `/webhook_deliveries/${encodeURIComponent(d.id)}/redeliver`);
    redeliver.disabled = false;
    onRedeliver(status === 202 ? null : body?.error?.message || `the server answered ${status}`, d);
  });
  const more = el("button", { type: "button", class: "plain", text: "Details", "aria-expanded": "false",
    "aria-label": `Details of ${d.type} to ${d.url}: payload and answer` });
  const tr = el("tr", { "data-delivery": d.id, "data-updated": d.updated_at },
    el("td", {}, el("span", { class: `badge ${BADGE[d.status] || "queued"}`, text: d.status })),
    el("td", { text: d.type }),
    el("td", { class: "url", title: d.url }, el("span", { text: middle(d.url, 18) })),
    withJob ? el("td", { class: "job" }, jobLink(d)) : null,
    el("td", { text: String(d.attempts) }),
    el("td", { class: "answer-cell" }, lastAnswer(d)),
    el("td", {}, d.status === "pending" ? when(d.next_attempt_at) : el("span", { class: "muted", text: "—" })),
    el("td", {}, when(d.delivered_at)),
    el("td", { class: "actions" }, more, canChange() ? redeliver : null));
  more.addEventListener("click", async () => {
    const open = tr.nextElementSibling?.classList.contains("delivery-more") ? tr.nextElementSibling : null;
    if (open) { open.remove(); more.setAttribute("aria-expanded", "false"); return; }
    more.setAttribute("aria-expanded", "true");
    const cell = el("td", { colspan: String(columns), "data-label": "" });
    const row = el("tr", { class: "delivery-more", "data-details": d.id }, cell);
    tr.after(row);
    cell.append(await details(d));
  });
  return tr;
}

export function deliveriesTable(withJob = true) {
  const heads = ["Status", "Event", "Endpoint", withJob ? "Job" : null, "Tries", "Last answer", "Next try",
    "Delivered at", "Actions"].filter(Boolean);
  return el("table", { class: "deliveries" },
    el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col", text: h })))), el("tbody"));
}

export class DeliveriesView {
  constructor(section) {
    this.section = section;
    this.list = section.querySelector("#deliveries-list");
    this.status = section.querySelector("#deliveries-status");
    this.table = null;
    this.timer = null;
  }

  async open() {
    this.section.hidden = false;
    await this.load();
    this.section.querySelector("h2").focus();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.load(), POLL_MS);
  }

  close() {
    this.section.hidden = true;
    clearInterval(this.timer);
    this.timer = null;
  }

  async load() {
    if (this.loading) return;
    this.loading = true;
    try {
      const found = [];
      for (const status of ORDER) {
        const { status: code, body } = await api("GET", `/webhook_deliveries?status=${status}&limit=50`);
        if (code !== 200) {
          this.status.textContent = body?.error?.message || `the server answered ${code}`;
          return;
        }
        found.push(...body.deliveries);
      }
      this.show(found);
    } finally {
      this.loading = false;
    }
  }

  // Rows change in place: a delivery whose `updated_at` is unchanged keeps its row (and focus, and its open
  // details); a changed one gets a new row where it belongs, its details closed.
  show(found) {
    if (found.length === 0) {
      this.table = null;
      this.list.replaceChildren(el("p", { class: "muted", text:
        "No webhook deliveries yet. Jobs with a webhook (or a server started with --webhook-url) make them." }));
      return;
    }
    if (!this.table) {
      this.table = deliveriesTable();
      this.list.replaceChildren(this.table);
    }
    const body = this.table.tBodies[0];
    const columns = this.table.tHead.rows[0].cells.length;
    const rows = new Map([...body.querySelectorAll("tr[data-delivery]")].map((tr) => [tr.dataset.delivery, tr]));
    const wanted = new Set(found.map((d) => d.id));
    for (const [id, tr] of rows) {
      if (!wanted.has(id)) { body.querySelector(`tr[data-details="${CSS.escape(id)}"]`)?.remove(); tr.remove(); }
    }
    let previous = null;
    for (const d of found) {
      let tr = rows.get(d.id);
      if (tr && tr.dataset.updated !== d.updated_at) {
        const focused = tr.contains(document.activeElement) ? document.activeElement.textContent : null;
        body.querySelector(`tr[data-details="${CSS.escape(d.id)}"]`)?.remove();
        const fresh = this.row(d, columns);
        tr.replaceWith(fresh);
        tr = fresh;
        if (focused) [...tr.querySelectorAll("button")].find((b) => b.textContent === focused)?.focus();
      } else if (!tr) {
        tr = this.row(d, columns);
      }
      const after = previous ? (previous.nextElementSibling?.classList.contains("delivery-more")
        ? previous.nextElementSibling : previous) : null;
      const place = after ? after.nextElementSibling : body.firstElementChild;
      if (place !== tr) {
        const details = tr.nextElementSibling?.classList.contains("delivery-more") ? tr.nextElementSibling : null;
        body.insertBefore(tr, place);
        if (details) tr.after(details);
      }
      previous = tr;
    }
  }

  row(d, columns) {
    return deliveryRow(d, { columns, onRedeliver: (error, sent) => {
      this.status.textContent = error || `Sending ${sent.type} to ${sent.url} again.`;
      this.load();
    } });
  }
}

// The deliveries of one job, for its view (nothing when it has none).
export async function jobDeliveries(taskId) {
  const { status, body } = await api("GET", `/webhook_deliveries?task_id=${encodeURIComponent(taskId)}&limit=20`);
  if (status !== 200 || body.deliveries.length === 0) return null;
  const note = el("p", { class: "muted", role: "status" });
  const section = el("section", { "aria-label": "webhook deliveries" }, el("h3", { text: "Webhook deliveries" }));
  const table = deliveriesTable(false);
  const columns = table.tHead.rows[0].cells.length;
  table.tBodies[0].append(...body.deliveries.map((d) => deliveryRow(d, { withJob: false, columns,
    onRedeliver: (error, sent) => { note.textContent = error || `Sending ${sent.type} to ${sent.url} again.`; } })));
  section.append(el("div", { class: "table-wrap" }, table), note);
  return section;
}
