// The live jobs table: one page from the API, kept current by events, patched in place once per frame.
// Rows never move under the reader: while the pointer is over the table (or its "N new jobs" bar), a row
// has focus, text in it is selected or the page is scrolled past its top, new rows wait behind the bar,
// and deleted ones stay, greyed, until then.

import { api, canChange } from "./api.js";
import { sameFilters } from "./address.js";
import { age, el, jobMarks, took } from "./format.js";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const NARROW = window.matchMedia("(max-width: 640px)");

// On a phone: the host and the end of the path, the middle left out (the whole URL is the cell's title).
export function middle(url, keep = 14) {
  let host = url;
  let rest = "";
  try {
    const parsed = new URL(url);
    host = parsed.host;
    rest = parsed.pathname + parsed.search;
  } catch { return url; }
  return rest.length > keep + 1 ? `${host}/…${rest.slice(-keep)}` : `${host}${rest}`;
}

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
    this.search = {};               // the search bar's filters besides status
    this.onError = () => {};        // shows why a listing was refused (a bad search)
    this.batch = null;              // a batch id: the table lists only that batch's jobs
    this.cursors = [""];            // cursor of each page visited; the last is the current one
    this.next = null;
    this.rows = new Map();          // id -> task, in display order
    this.loading = null;
    this.buffered = [];             // events that arrive while a page loads
    this.dirty = false;
    this.shown = 0;                 // bumped by every view shown: a slower earlier one stops paging
    this.held = new Map();          // new jobs not inserted while the user works with the table
    this.gone = new Set();          // jobs deleted meanwhile, still shown (greyed) for the same reason
    this.liveSince = 0;             // jobs inserted live since the page was read (see announceHeld)
    this.area = document.getElementById("jobs-area");
    this.pointed = false;
    this.area.addEventListener("pointerenter", () => { this.pointed = true; });
    this.area.addEventListener("pointerleave", () => { this.pointed = false; this.release(); });
    this.area.addEventListener("focusout", (event) => {
      if (!this.area.contains(event.relatedTarget)) setTimeout(() => this.release());  // once focus has moved
    });
    this.newButton = document.getElementById("new-jobs");
    this.newButton.addEventListener("click", async (event) => {
      const byKeyboard = event.detail === 0;
      await this.showHeld();
      if (!byKeyboard) return;
      this.render();  // now, not at the next frame: the reader goes on from the newest job
      this.body.querySelector("a")?.focus();
    });
    this.onPage = () => {};         // asked to show another page (the address says which)
    this.newer.addEventListener("click", () => this.onPage(this.cursors.length - 1));
    this.older.addEventListener("click", () => this.onPage(this.cursors.length + 1));
  }

  get onFirstPage() { return this.cursors.length === 1; }

  get filters() {
    return { ...(this.batch ? { batch: this.batch } : {}), ...(this.status ? { status: this.status } : {}),
      ...this.search };
  }

  // Show what an address says: its filters (status and batch among them) and its page. A step to the
  // next or previous page of the same filters pages from here; anything else starts again from page 1.
  async show(filters, pageNo) {
    const mine = ++this.shown;
    const here = this.cursors.length;
    if (sameFilters(filters, this.filters)) {
      if (pageNo === here + 1 && this.next) return this.page(+1);
      if (pageNo === here - 1) return this.page(-1);
      if (pageNo === here) return this.reload();
    }
    const { status = "", batch = null, ...search } = filters;
    if (batch !== this.batch) { this.rows = new Map(); this.schedule(); }  // another batch's rows never linger
    Object.assign(this, { status, batch, search, cursors: [""], next: null });
    let counts = await this.reload();
    for (let page = 1; page < pageNo && this.next && mine === this.shown; page++) counts = await this.page(+1) || counts;
    return counts;
  }

  async page(direction) {
    if (direction > 0 && this.next === "more") await this.reload();  // a placeholder: read the real cursor
    if (direction > 0 && this.next) this.cursors.push(this.next);
    if (direction < 0 && this.cursors.length > 1) this.cursors.pop();
    return this.reload();
  }

  // Load the current page; events that arrive meanwhile are applied after it, newest state winning.
  // `gentle`: a read the reader did not ask for (a reconnect, leaving the table); if they are working with
  // the table when it comes, it changes the rows shown in place and holds the new ones, like events.
  async reload({ gentle = false } = {}) {
    const cursor = this.cursors[this.cursors.length - 1];
    const query = new URLSearchParams({ limit: String(this.pageSize) });
    if (this.status) query.set("status", this.status);
    if (this.batch) query.set("batch", this.batch);
    for (const [key, value] of Object.entries(this.search)) query.set(key, value);
    if (cursor) query.set("cursor", cursor);
    const load = api("GET", `/queue_tasks?${query}`);
    this.loading = load;
    const { status, body } = await load;
    if (this.loading !== load) return null;
    this.loading = null;
    // an unreachable server (status 0) is the outage banner's to say, not a refused search's
    this.onError(status === 200 || status === 0 ? null : body?.error?.message || `the server answered ${status}`);
    if (status !== 200) return null;
    if (gentle && this.busy()) {
      for (const task of [...body.tasks, ...this.takeBuffered()]) this.apply(task);
      return body.counts;
    }
    this.rows = new Map(body.tasks.map((t) => [t.id, t]));
    this.totalAtLoad = STATUSES.reduce((n, s) => n + (body.counts[s] || 0), 0);
    this.total = this.totalAtLoad;
    this.liveSince = 0;
    this.held.clear();
    this.gone.clear();
    this.hideHeld();
    this.next = body.next;
    for (const task of this.takeBuffered()) this.apply(task);
    this.schedule();
    return body.counts;
  }

  takeBuffered() {
    const buffered = this.buffered;
    this.buffered = [];
    return buffered;
  }

  apply(task) {
    if (this.loading) { this.buffered.push(task); return; }
    const known = this.rows.get(task.id);
    if (known) {
      if (task.updated_at >= known.updated_at) this.rows.set(task.id, task);
    } else if (this.onFirstPage && this.shows(task) && task.id > this.newestId()) {
      // ids sort by creation time: a task newer than the newest row belongs at the top, unless the
      // user is working with the table: then it waits behind the "N new jobs" button
      if (this.busy()) { this.hold(task); return; }
      this.rows = new Map([[task.id, task], ...this.rows]);
      this.liveSince += 1;
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

  // The pointer over the table or its bar, focus in them, a selection, or a scrolled page: new rows would
  // move what the user works with.
  busy() {
    const table = this.body.closest("table");
    const selection = document.getSelection();
    const selecting = selection && !selection.isCollapsed && table.contains(selection.anchorNode);
    return this.pointed || this.area.contains(document.activeElement) || selecting
      || table.getBoundingClientRect().top < 0;  // its top scrolled out of sight
  }

  // The user has left the table: what waited comes in.
  release() {
    if ((this.held.size || this.gone.size) && !this.busy()) this.showHeld({ gentle: true });
  }

  hold(task) {
    this.held.set(task.id, task);
    this.announceHeld();
  }

  // The live link sends only the newest few of a burst, so with every job listed, the queue's total
  // (from the counts messages) says how many arrived since the page was read.
  seeTotal(counts) {
    this.total = STATUSES.reduce((n, s) => n + (counts[s] || 0), 0);
    if (this.held.size) this.announceHeld();
  }

  announceHeld() {
    const unfiltered = !this.status && !this.batch && this.totalAtLoad != null && this.total != null
      && Object.keys(this.search).length === 0;
    const n = unfiltered ? Math.max(this.held.size, this.total - this.totalAtLoad - this.liveSince) : this.held.size;
    this.newButton.textContent = `${n.toLocaleString()} new job${n === 1 ? "" : "s"}`;
    this.newButton.hidden = false;
  }

  showHeld(options) {
    this.held.clear();
    this.hideHeld();
    return this.reload(options);
  }

  hideHeld() {
    this.newButton.hidden = true;
    this.newButton.textContent = "";
  }

  remove(id) {
    if (!this.rows.has(id)) return;
    if (this.busy()) this.gone.add(id);
    else this.rows.delete(id);
    this.schedule();
  }

  // Whether a task not yet on the page belongs to what the page lists.
  shows(task) {
    return (!this.status || this.status === task.status) && (!this.batch || this.batch === task.batch_id)
      && Object.keys(this.search).length === 0;  // other filters are the server's to judge, at the next read
  }

  newestId() {
    let newest = "";
    for (const id of this.rows.keys()) if (id > newest) newest = id;
    return newest;
  }

  // What the server needs to send this page: its rows, and on the first page the newer tasks.
  announceView() {
    const searching = Object.keys(this.search).length > 0;
    const view = { task_ids: [...this.rows.keys()], newest: this.onFirstPage && !searching ? this.pageSize : 0,
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

  // Patch the page in place: a row is built once per job and then only its changed cells are rewritten,
  // so focus, a text selection and the scroll position survive live updates and the ticking Age column.
  render() {
    const now = Date.now();
    const elements = this.elements || (this.elements = new Map());
    for (const [id, tr] of elements) {
      if (!this.rows.has(id)) { tr.remove(); elements.delete(id); }
    }
    let previous = null;
    for (const task of this.rows.values()) {
      let tr = elements.get(task.id);
      if (!tr) {
        tr = this.row(task, now);
        elements.set(task.id, tr);
        if (previous) previous.after(tr); else this.body.prepend(tr);
      } else {
        this.patch(tr, task, now);
      }
      if (this.gone.has(task.id) && !tr.classList.contains("gone")) {
        tr.classList.add("gone");
        tr.cells[0].append(el("span", { class: "sr", text: " (deleted)" }));
        for (const button of tr.querySelectorAll("button")) button.disabled = true;
      }
      previous = tr;
    }
    this.empty.hidden = this.rows.size > 0;
    this.newer.disabled = this.onFirstPage;
    this.older.disabled = !this.next;
    this.info.textContent = `page ${this.cursors.length}`;
    this.announceView();
  }

  // Rewrite only what changed in a job's row; the action button is replaced only when Cancel turns to Retry.
  patch(tr, task, now) {
    const ageCell = tr.cells[5];
    const shown = age(task.created_at, now);
    if (ageCell.textContent !== shown) ageCell.textContent = shown;
    if (task.status === "running") {
      const running = took(task, now);  // how long it has been fetching, ticking like the age
      if (tr.cells[4].textContent !== running) tr.cells[4].textContent = running;
    }
    if (tr.dataset.updated === task.updated_at) return;
    const fresh = this.row(task, now);
    tr.dataset.updated = task.updated_at;
    tr.dataset.status = task.status;
    tr.className = fresh.className;
    for (const i of [0, 2, 3, 4]) {
      if (tr.cells[i].innerHTML !== fresh.cells[i].innerHTML) tr.cells[i].replaceWith(fresh.cells[i].cloneNode(true));
    }
    const button = tr.cells[6].querySelector("button");
    const wanted = fresh.cells[6].querySelector("button");
    if (button?.textContent !== wanted?.textContent) {
      const focused = tr.cells[6].contains(document.activeElement);
      tr.cells[6].replaceWith(fresh.cells[6]);
      if (focused) wanted?.focus();  // Cancel turned Retry under the reader's focus: it stays where it was
    }
  }

  row(task, now) {
    const bad = task.http_status >= 400;
    // a failed job says why in its own cell (the code; the message on hover and in the job's view)
    const http = task.error && task.status !== "queued" && !task.http_status
      ? el("span", { class: "error-text", text: task.error.code, title: task.error.message })
      : el("span", {
        class: `http ${task.http_status ? (bad ? "bad-status" : "good") : ""}`,
        text: task.http_status ?? "",
        title: task.error ? `${task.error.code}: ${task.error.message}` : null,
      });
    const actions = el("td", { class: "actions" });
    if (!canChange()) {
      // a read-only token: nothing to offer
    } else if (task.status === "queued" || task.status === "running") {
      actions.append(el("button", { type: "button", text: "Cancel", "aria-label": `Cancel ${task.url}`,
        onclick: (e) => { e.stopPropagation(); api("DELETE", `/queue_tasks/${task.id}`).then((r) => this.acted(r)); } }));
    } else {
      actions.append(el("button", { type: "button", text: "Retry", "aria-label": `Retry ${task.url}`,
        onclick: (e) => { e.stopPropagation(); api("POST", `/queue_tasks/${task.id}/retry`).then((r) => this.acted(r)); } }));
    }
    const link = el("a", { href: `#/job/${task.id}`, text: NARROW.matches ? middle(task.url) : task.url,
      onclick: (e) => { e.preventDefault(); this.onOpen(task.id); } });
    const marks = jobMarks(task);
    return el("tr", { "data-id": task.id, "data-status": task.status, "data-updated": task.updated_at,
      class: bad ? "bad" : null },
      el("td", {}, el("span", { class: `badge ${task.status}`, text: task.status })),
      el("td", { class: marks ? "url marked" : "url", title: task.url }, link, marks),
      el("td", {}, http),
      el("td", { text: String(task.attempts) }),
      el("td", { text: took(task, now) }),
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
