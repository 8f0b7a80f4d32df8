// The webhook deliveries view (#/deliveries): failed ones first with their last error and next attempt,
// a Redeliver button each; and the list a job's view shows of its own deliveries.

import { api, canChange } from "./api.js";
import { el } from "./format.js";

const ORDER = ["failed", "pending", "delivered"];

export function when(iso) {
  if (!iso) return el("span", { class: "muted", text: "—" });
  return el("time", { datetime: iso, title: `${iso} (UTC)`, text: new Date(iso).toLocaleString() });
}

function lastAnswer(d) {
  if (d.last_error) return d.last_error;
  return d.last_http_status ? `HTTP ${d.last_http_status}` : "";
}

// One table row per delivery; `onRedeliver` is called after the server took the request.
export function deliveryRows(deliveries, { onRedeliver, withJob = true }) {
  return deliveries.map((d) => {
    const button = el("button", { type: "button", class: "plain", text: "Redeliver",
      "aria-label": `Redeliver ${d.type} to ${d.url}` });
    button.addEventListener("click", async () => {
      button.disabled = true;
      const { status, body } = await api("POST", `/webhook_deliveries/${encodeURIComponent(d.id)}/redeliver`);
      button.disabled = false;
      onRedeliver(status === 202 ? null : body?.error?.message || `the server answered ${status}`, d);
    });
    const job = d.task_id ? el("a", { href: `#/job/${encodeURIComponent(d.task_id)}`, text: d.task_id, class: "mono" })
      : d.batch_id ? el("a", { href: `#/batch/${encodeURIComponent(d.batch_id)}`, text: `batch ${d.batch_id}`, class: "mono" })
        : "";
    return el("tr", { "data-delivery": d.id },
      el("td", {}, el("span", { class: `badge ${d.status === "delivered" ? "completed" : d.status === "failed" ? "failed" : "queued"}`,
        text: d.status })),
      el("td", { text: d.type }),
      el("td", { class: "url", title: d.url, text: d.url }),
      withJob ? el("td", {}, job) : null,
      el("td", { text: String(d.attempts) }),
      el("td", { class: d.last_error ? "error-text" : "", text: lastAnswer(d) }),
      el("td", {}, d.status === "pending" ? when(d.next_attempt_at) : when(d.delivered_at)),
      el("td", {}, canChange() ? button : null));
  });
}

export function deliveriesTable(rows, withJob = true) {
  const heads = ["Status", "Event", "Endpoint", withJob ? "Job" : null, "Tries", "Last answer", "Next try / delivered",
    "Actions"].filter(Boolean);
  return el("table", { class: "deliveries" },
    el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows));
}

export class DeliveriesView {
  constructor(section) {
    this.section = section;
    this.list = section.querySelector("#deliveries-list");
    this.status = section.querySelector("#deliveries-status");
    section.querySelector("#deliveries-refresh").addEventListener("click", () => this.load());
  }

  async open() {
    this.section.hidden = false;
    await this.load();
    this.section.querySelector("h2").focus();
  }

  close() {
    this.section.hidden = true;
  }

  async load() {
    const found = [];
    for (const status of ORDER) {
      const { status: code, body } = await api("GET", `/webhook_deliveries?status=${status}&limit=50`);
      if (code !== 200) {
        this.status.textContent = body?.error?.message || `the server answered ${code}`;
        return;
      }
      found.push(...body.deliveries);
    }
    if (found.length === 0) {
      this.list.replaceChildren(el("p", { class: "muted", text:
        "No webhook deliveries yet. Jobs with a webhook (or a server started with --webhook-url) make them." }));
      return;
    }
    const rows = deliveryRows(found, { onRedeliver: (error, d) => {
      this.status.textContent = error || `Sending ${d.type} to ${d.url} again.`;
      this.load();
    } });
    this.list.replaceChildren(deliveriesTable(rows));
  }
}

// The deliveries of one job, for its view (nothing when it has none).
export async function jobDeliveries(taskId) {
  const { status, body } = await api("GET", `/webhook_deliveries?task_id=${encodeURIComponent(taskId)}&limit=20`);
  if (status !== 200 || body.deliveries.length === 0) return null;
  const note = el("p", { class: "muted", role: "status" });
  const section = el("section", { "aria-label": "webhook deliveries" }, el("h3", { text: "Webhook deliveries" }));
  const rows = deliveryRows(body.deliveries, { withJob: false, onRedeliver: (error, d) => {
    note.textContent = error || `Sending ${d.type} to ${d.url} again.`;
  } });
  section.append(deliveriesTable(rows, false), note);
  return section;
}
