// The live jobs table: one page from the API, kept current by events, redrawn once per frame.

import { api } from "./api.js";
import { age, el, jobMarks, took } from "./format.js";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];

export class JobsTable {
  constructor(root, { onOpen, onView = () => {}, pageSize = 50 }) {
    this.body = root.querySelector("tbody");
    this.empty = document.getElementById("empty");
    this.newer = document.getElementById("newer");
    this.older = document.getElementById("older");
    this.info = document.getElementById("page-info");
    this.onOpen = onOpen;
    this.onView = onView;
    this.viewSent = "";
    this.pageSize = pageSize;
    this.status = "";
    this.batch = null;              // a batch id: the table lists only that batch's jobs
    this.cursors = [""];            // cursor of each page visited; the last is the current one
    this.next = null;
    this.rows = new Map();          // id -> task, in display order
    this.loading = null;
    this.buffered = [];             // events that arrive while a page loads
    this.dirty = false;
    this.newer.addEventListener("click", () => this.page(-1));
    this.older.addEventListener("click", () => this.page(+1));
  }

  get onFirstPage() { return this.cursors.length === 1; }

  filter(status) {
    this.status = status;
    this.cursors = [""];
    return this.reload();
  }

  // List one batch's jobs (null: all jobs), from the first page and every status.
  showBatch(batchId) {
    this.batch = batchId;
    this.status = "";
    this.cursors = [""];
    this.rows = new Map();
    this.next = null;
    this.schedule();
    return this.reload();
  }

  page(direction) {
    if (direction > 0 && this.next) this.cursors.push(this.next);
    if (direction < 0 && this.cursors.length > 1) this.cursors.pop();
    return this.reload();
  }

  // Load the current page; events that arrive meanwhile are applied after it, newest state winning.
  async reload() {
    const cursor = this.cursors[this.cursors.length - 1];
    const query = new URLSearchParams({ limit: String(this.pageSize) });
    if (this.status) query.set("status", this.status);
    if (this.batch) query.set("batch", this.batch);
    if (cursor) query.set("cursor", cursor);
    const load = api("GET", `/queue_tasks?${query}`);
    this.loading = load;
    const { status, body } = await load;
    if (this.loading !== load) return null;
    this.loading = null;
    if (status !== 200) return null;
    this.rows = new Map(body.tasks.map((t) => [t.id, t]));
    this.next = body.next;
    const buffered = this.buffered;
    this.buffered = [];
    for (const task of buffered) this.apply(task);
    this.schedule();
    return body.counts;
  }

  apply(task) {
    if (this.loading) { this.buffered.push(task); return; }
    const known = this.rows.get(task.id);
    if (known) {
      if (task.updated_at >= known.updated_at) this.rows.set(task.id, task);
    } else if (this.onFirstPage && this.shows(task) && task.id > this.newestId()) {
      // ids sort by creation time: a task newer than the newest row belongs at the top
      this.rows = new Map([[task.id, task], ...this.rows]);
      if (this.rows.size > this.pageSize) {
        const last = [...this.rows.keys()].pop();
        this.rows.delete(last);
        if (!this.next) this.next = "more";  // a reload gives the real cursor
      }
    } else {
      return;
    }
    this.schedule();
  }

  // Whether a task not yet on the page belongs to what the page lists.
  shows(task) {
    return (!this.status || this.status === task.status) && (!this.batch || this.batch === task.batch_id);
  }

  newestId() {
    let newest = "";
    for (const id of this.rows.keys()) if (id > newest) newest = id;
    return newest;
  }

  // What the server needs to send this page: its rows, and on the first page the newer tasks.
  announceView() {
    const view = { task_ids: [...this.rows.keys()], newest: this.onFirstPage ? this.pageSize : 0,
                   after_id: this.newestId(), status: this.status || null };
    const key = JSON.stringify(view);
    if (key !== this.viewSent) {
      this.viewSent = key;
      this.onView(view);
    }
  }

  schedule() {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => { this.dirty = false; this.render(); });
  }

  render() {
    const now = Date.now();
    const fragment = document.createDocumentFragment();
    for (const task of this.rows.values()) fragment.append(this.row(task, now));
    this.body.replaceChildren(fragment);
    this.empty.hidden = this.rows.size > 0;
    this.newer.disabled = this.onFirstPage;
    this.older.disabled = !this.next;
    this.info.textContent = `page ${this.cursors.length}`;
    this.announceView();
  }

  row(task, now) {
    const bad = task.http_status >= 400;
    const http = el("span", {
      class: `http ${task.http_status ? (bad ? "bad-status" : "good") : ""}`,
      text: task.http_status ?? "",
      title: task.error ? `${task.error.code}: ${task.error.message}` : null,
    });
    const actions = el("td", { class: "actions" });
    if (task.status === "queued" || task.status === "running") {
      actions.append(el("button", { type: "button", text: "Cancel", "aria-label": `Cancel ${task.url}`,
        onclick: (e) => { e.stopPropagation(); api("DELETE", `/queue_tasks/${task.id}`).then((r) => this.acted(r)); } }));
    } else {
      actions.append(el("button", { type: "button", text: "Retry", "aria-label": `Retry ${task.url}`,
        onclick: (e) => { e.stopPropagation(); api("POST", `/queue_tasks/${task.id}/retry`).then((r) => this.acted(r)); } }));
    }
    const link = el("a", { href: `#/job/${task.id}`, text: task.url,
      onclick: (e) => { e.preventDefault(); this.onOpen(task.id); } });
    const marks = jobMarks(task);
    return el("tr", { "data-id": task.id, "data-status": task.status, class: bad ? "bad" : null },
      el("td", {}, el("span", { class: `badge ${task.status}`, text: task.status })),
      el("td", { class: marks ? "url marked" : "url", title: task.url }, link, marks),
      el("td", {}, http),
      el("td", { text: String(task.attempts) }),
      el("td", { text: took(task) }),
      el("td", { text: age(task.created_at, now) }),
      actions);
  }

  acted({ status, body }) {
    if (body && body.task) this.apply(body.task);
    else if (status >= 400 && body && body.error) alert(body.error.message);
  }
}

export function showCounts(counts) {
  let all = 0;
  for (const status of STATUSES) {
    const n = counts[status] || 0;
    all += n;
    document.querySelector(`[data-count=${status}]`).textContent = n.toLocaleString();
  }
  document.querySelector("[data-count=all]").textContent = all.toLocaleString();
}
