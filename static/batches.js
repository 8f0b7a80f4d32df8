// The batches list (#/batches): each batch's progress bar, rate and time left, newest first.

import { api } from "./api.js";
import { count, el } from "./format.js";

const FINISHED = ["completed", "failed", "cancelled"];

// Jobs finished per second since the batch was created, and the seconds left at that pace.
export function pace(batch, now = Date.now()) {
  const done = FINISHED.reduce((n, s) => n + (batch.counts[s] || 0), 0);
  const end = batch.finished_at ? Date.parse(batch.finished_at) : now;
  const seconds = Math.max(1, (end - Date.parse(batch.created_at)) / 1000);
  const rate = done / seconds;
  const left = batch.finished_at ? 0 : rate > 0 ? (batch.total - done) / rate : null;
  return { done, rate, left };
}

function duration(seconds) {
  if (seconds == null) return "unknown yet";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export class BatchesView {
  constructor(section) {
    this.section = section;
    this.list = section.querySelector("#batches-list");
  }

  async open() {
    this.section.hidden = false;
    const { status, body } = await api("GET", "/batches?limit=50");
    if (status !== 200) {
      this.list.replaceChildren(el("p", { class: "error", role: "alert", text: body?.error?.message || `HTTP ${status}` }));
    } else if (body.batches.length === 0) {
      this.list.replaceChildren(el("p", { class: "muted", text: "No batches yet: POST /batches or jobqueue submit makes one." }));
    } else {
      this.list.replaceChildren(el("table", {},
        el("thead", {}, el("tr", {}, ...["Batch", "Progress", "Done", "Failed", "Rate", "Time left", "Created"]
          .map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...body.batches.map((b) => this.row(b)))));
    }
    this.section.querySelector("h2").focus();
  }

  row(batch) {
    const { done, rate, left } = pace(batch);
    const bar = el("progress", { max: String(batch.total || 1), value: String(done),
      "aria-label": `batch ${batch.id}: ${count(done)} of ${count(batch.total)} done` });
    return el("tr", { "data-batch": batch.id },
      el("td", {}, el("a", { href: `#/batch/${encodeURIComponent(batch.id)}`, class: "mono", text: batch.id })),
      el("td", {}, bar),
      el("td", { text: `${count(done)} / ${count(batch.total)}` }),
      el("td", { text: count(batch.counts.failed) }),
      el("td", { text: `${rate.toFixed(1)} jobs/s` }),
      el("td", { text: batch.finished_at ? "finished" : duration(left) }),
      el("td", {}, el("time", { datetime: batch.created_at, title: `${batch.created_at} (UTC)`,
        text: new Date(batch.created_at).toLocaleString() })));
  }

  close() {
    this.section.hidden = true;
  }
}
