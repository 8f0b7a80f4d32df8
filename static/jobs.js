// The live jobs table: one page from the API, kept current by events, patched in place once per frame.
// Rows never move under the reader: while the pointer is over the table (or its "N new jobs" bar), a row
// has focus, text in it is selected, the page is scrolled past its top or live updates are paused, new
// rows wait behind the bar, and deleted ones stay, greyed, until then. Rows can be selected (a checkbox
// each, or every job matching the view) for the bulk actions.

import { api, canChange } from "./api.js";
import { sameFilters } from "./address.js";
import { age, el, jobMarks, localTime, took } from "./format.js";
import { emptyNote } from "./matching.js";

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
  constructor(root, { onView = () => {}, onActed = () => {}, onSelect = () => {}, pageSize = 50 }) {
    this.body = root.querySelector("tbody");
    this.empty = document.getElementById("empty");
    this.newer = document.getElementById("newer");
    this.older = document.getElementById("older");
    this.info = document.getElementById("page-info");
    this.onView = onView;
    this.onActed = onActed;         // a row's Cancel or Retry went through: (action, task) for its undo
    this.onSelect = onSelect;       // the selection changed
    this.selected = new Set();      // ids of the checked rows
    this.allMatching = false;       // every job matching the view is selected, not only rows
    this.paused = false;            // live updates paused by the reader: nothing moves or changes
    this.pending = new Map();       // changes to shown rows that arrived while paused
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
    this.asked = null;              // the read the reader asked for (a page, a view), while it runs
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
    this.pageBox = root.querySelector("thead input[type=checkbox]");
    this.pageBox.addEventListener("change", () => this.selectPage(this.pageBox.checked));
    this.pauseButton = document.getElementById("live-pause");
    this.pauseButton.addEventListener("click", () => this.pause(!this.paused));
  }

  // Pause or resume live updates of the table: paused, no row moves, appears, goes or changes; resuming
  // reads the page afresh.
  pause(on) {
    this.paused = on;
    this.pauseButton.setAttribute("aria-pressed", String(on));
    this.pauseButton.textContent = on ? "Resume live updates" : "Pause live updates";
    document.getElementById("jobs-area").classList.toggle("paused", on);
    if (!on) {
      this.pending.clear();
      this.showHeld();
    }
  }

  // The ids selected on this page, or null when every matching job is.
  selection() {
    return this.allMatching ? null : [...this.selected].filter((id) => this.rows.has(id));
  }

  tasksSelected() {
    return (this.selection() || []).map((id) => this.rows.get(id));
  }

  select(id, on) {
    this.allMatching = false;
    if (on) this.selected.add(id); else this.selected.delete(id);
    this.showSelection();
  }

  selectPage(on) {
    this.allMatching = false;
    this.selected = on ? new Set(this.rows.keys()) : new Set();
    this.showSelection();
  }

  selectAllMatching() {
    this.selected = new Set(this.rows.keys());
    this.allMatching = true;
    this.showSelection();
  }

  clearSelection() {
    this.selected = new Set();
    this.allMatching = false;
    this.showSelection();
  }

  // The checkboxes say what is selected; the bulk actions follow.
  showSelection() {
    for (const box of this.body.querySelectorAll("input.pick")) {
      box.checked = this.allMatching || this.selected.has(box.closest("tr").dataset.id);
    }
    const some = this.selected.size > 0;
    this.pageBox.checked = this.allMatching || (some && [...this.rows.keys()].every((id) => this.selected.has(id)));
    this.pageBox.indeterminate = !this.pageBox.checked && some;
    this.onSelect();
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
    if (!sameFilters(filters, this.filters) || pageNo !== here) this.clearSelection();
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

  // The page becomes the current one when its rows come, so its number never shows over another's rows.
  async page(direction) {
    if (direction > 0 && this.next === "more") await this.reload();  // a placeholder: read the real cursor
    let cursors = this.cursors;
    if (direction > 0 && this.next) cursors = [...cursors, this.next];
    if (direction < 0 && cursors.length > 1) cursors = cursors.slice(0, -1);
    return this.reload({ cursors });
  }

  // Load a page (the current one unless `cursors` says another); events that arrive meanwhile are applied
  // after it, newest state winning. `gentle`: a read the reader did not ask for (a reconnect, leaving the
  // table); if they are working with the table when it comes, it changes the rows shown in place and holds
  // the new ones, like events. It waits for a read the reader asked for: that one's rows are not shown yet,
  // and a gentle read in its place would keep the previous page's rows (a reload walking back to page 2
  // with the scroll position restored past the table's top).
  async reload({ gentle = false, cursors = null } = {}) {
    while (gentle && this.asked) await this.asked.catch(() => null);
    if (gentle) return this.read({ gentle, cursors: this.cursors });
    const read = this.read({ gentle, cursors: cursors || this.cursors });
    this.asked = read;
    try {
      return await read;
    } finally {
      if (this.asked === read) this.asked = null;
    }
  }

  async read({ gentle, cursors }) {
    const cursor = cursors[cursors.length - 1];
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
    if (this.paused && gentle) return body.counts;  // paused: not even a reconnect moves the rows
    if (gentle && this.busy()) {
      for (const task of [...body.tasks, ...this.takeBuffered()]) this.apply(task);
      return body.counts;
    }
    this.cursors = cursors;
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
    if (known && this.paused) {
      this.pending.set(task.id, task);
      this.announceHeld();
      return;
    }
    if (known) {
      if (task.updated_at >= known.updated_at) this.rows.set(task.id, task);
    } else if (this.onFirstPage && this.shows(task) && this.belongsOnPage(task.id)) {
      // ids sort by creation time: a task newer than the page's oldest row (or any, while the page has room)
      // takes its place by id, unless the user is working with the table: then it waits behind the
      // "N new jobs" button. Not only above the newest row: with several processes, a job created a moment
      // before another can reach the page after it (its process committed it later)
      if (this.busy()) { this.hold(task); return; }
      this.rows = new Map([...this.rows, [task.id, task]].sort(([a], [b]) => (a < b ? 1 : a > b ? -1 : 0)));
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
    return this.paused || this.pointed || this.area.contains(document.activeElement) || selecting
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
    if (this.paused && !this.held.size && !this.pending.size) return;
    const unfiltered = !this.status && !this.batch && this.totalAtLoad != null && this.total != null
      && Object.keys(this.search).length === 0;
    const n = unfiltered ? Math.max(this.held.size, this.total - this.totalAtLoad - this.liveSince) : this.held.size;
    const changed = this.pending.size ? `${n ? ", " : ""}${this.pending.size.toLocaleString()} changed` : "";
    this.newButton.textContent = (n || !changed ? `${n.toLocaleString()} new job${n === 1 ? "" : "s"}` : "") + changed;
    this.newButton.hidden = false;
  }

  showHeld(options) {
    this.held.clear();
    this.pending.clear();
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
    else { this.rows.delete(id); this.selected.delete(id); }
    this.schedule();
  }

  // Whether a task not yet on the page belongs to what the page lists.
  shows(task) {
    return (!this.status || this.status === task.status) && (!this.batch || this.batch === task.batch_id)
      && Object.keys(this.search).length === 0;  // other filters are the server's to judge, at the next read
  }

  // The oldest id the first page holds while it is full, else "" (any task belongs on it).
  firstPageFloor() {
    if (this.rows.size < this.pageSize) return "";
    let oldest = null;
    for (const id of this.rows.keys()) if (oldest === null || id < oldest) oldest = id;
    return oldest ?? "";
  }

  belongsOnPage(id) {
    return id > this.firstPageFloor();
  }

  // What the server needs to send this page: its rows, and on the first page the newer tasks.
  announceView() {
    const searching = Object.keys(this.search).length > 0;
    const view = { task_ids: [...this.rows.keys()], newest: this.onFirstPage && !searching ? this.pageSize : 0,
                   after_id: this.firstPageFloor(), status: this.status || null };
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
        tr.cells[STATUS].append(el("span", { class: "sr", text: " (deleted)" }));
        for (const control of tr.querySelectorAll("button, input")) control.disabled = true;
      }
      previous = tr;
    }
    this.empty.hidden = this.rows.size > 0;
    if (!this.rows.size) this.empty.replaceChildren(...emptyNote(this.filters));  // why it is empty
    this.newer.disabled = this.onFirstPage;
    this.older.disabled = !this.next;
    this.info.textContent = `page ${this.cursors.length}`;
    this.announceView();
  }

  // Rewrite only what changed in a job's row; the action button is replaced only when Cancel turns to Retry.
  patch(tr, task, now) {
    const ageCell = tr.cells[AGE];
    const shown = age(task.created_at, now);
    if (ageCell.textContent !== shown) ageCell.textContent = shown;
    if (task.status === "running") {
      const running = took(task, now);  // how long it has been fetching, ticking like the age
      if (tr.cells[TOOK].textContent !== running) tr.cells[TOOK].textContent = running;
    }
    if (tr.dataset.updated === task.updated_at) return;
    const fresh = this.row(task, now);
    tr.dataset.updated = task.updated_at;
    tr.dataset.status = task.status;
    tr.className = fresh.className;
    // the status cell keeps its checkbox (and its checked state): only the badge beside it is rewritten
    const badge = tr.cells[STATUS].querySelector(".state");
    const freshBadge = fresh.cells[STATUS].querySelector(".state");
    if (badge.innerHTML !== freshBadge.innerHTML) badge.replaceWith(freshBadge);
    for (const i of [URL_CELL, HTTP, TRIES, TOOK]) {
      if (tr.cells[i].innerHTML !== fresh.cells[i].innerHTML) tr.cells[i].replaceWith(fresh.cells[i].cloneNode(true));
    }
    const button = tr.cells[ACTIONS].querySelector("button");
    const wanted = fresh.cells[ACTIONS].querySelector("button");
    if (button?.textContent !== wanted?.textContent) {
      const focused = tr.cells[ACTIONS].contains(document.activeElement);
      tr.cells[ACTIONS].replaceWith(fresh.cells[ACTIONS]);
      if (focused) wanted?.focus();  // Cancel turned Retry under the reader's focus: it stays where it was
    }
  }

  row(task, now) {
    const actions = el("td", { class: "actions" });
    const status = el("td", { class: "status" });
    if (canChange()) {
      const box = el("input", { type: "checkbox", class: "pick", "aria-label": `Select ${task.url}` });
      box.checked = this.allMatching || this.selected.has(task.id);
      box.addEventListener("change", () => this.select(task.id, box.checked));
      status.append(box, " ");
      const [action, text, method, path] = task.status === "queued" || task.status === "running"
        ? ["cancel", "Cancel", "DELETE", `/queue_tasks/${task.id}`]
        : ["retry", "Retry", "POST", `/queue_tasks/${task.id}/retry`];
      actions.append(el("button", { type: "button", text, class: action === "cancel" ? "danger-text" : null,
        "aria-label": `${text} ${task.url}`,
        onclick: (e) => { e.stopPropagation(); api(method, path).then((r) => this.acted(action, r)); } }));
    }
    // the job's own address: opening it is a step in the history, and a reload opens it again
    const link = el("a", { href: `#/job/${encodeURIComponent(task.id)}`, text: NARROW.matches ? middle(task.url) : task.url });
    const marks = jobMarks(task);
    const httpClass = task.status === "completed" && task.http_status >= 400 ? `http-${String(task.http_status)[0]}xx` : "";
    const state = el("span", { class: "state" },
      el("span", { class: `badge ${task.status}${httpClass ? " http-error" : ""}`, text: task.status }));
    // a completed job whose answer was an error says which class of error, in words, beside its badge
    if (httpClass) state.append(" ", el("span", { class: "http-class", text: `HTTP ${httpClass.slice(5)}` }));
    status.append(state);
    return el("tr", { "data-id": task.id, "data-status": task.status, "data-updated": task.updated_at,
      class: task.http_status >= 400 ? "bad" : null },
      status,
      el("td", { class: marks ? "url marked" : "url", title: task.url }, link, marks),
      el("td", { class: "outcome" }, outcome(task)),
      el("td", { text: String(task.attempts) }),
      el("td", { text: took(task, now) }),
      el("td", { text: age(task.created_at, now), title: localTime(task.created_at) }),
      actions);
  }

  acted(action, { status, body }) {
    if (body && body.task) { this.apply(body.task); this.onActed(action, body.task); }
    else if (status >= 400 && body && body.error) alert(body.error.message);
  }
}

// the cells of a row (the status cell starts with the row's checkbox)
const [STATUS, URL_CELL, HTTP, TRIES, TOOK, AGE, ACTIONS] = [0, 1, 2, 3, 4, 5, 6];

// What came of a job: its HTTP status, and under the code of an error its message, readable without hover.
function outcome(task) {
  const bad = task.http_status >= 400;
  const cell = el("div", { class: "outcome-wrap" });
  if (task.http_status) {
    cell.append(el("span", { class: `http ${bad ? "bad-status" : "good"}`, text: task.http_status,
      title: task.error ? `${task.error.code}: ${task.error.message}` : null }));
  } else if (task.error && task.status !== "queued") {
    cell.append(el("span", { class: "error-text", text: task.error.code }));
  } else {
    cell.append(el("span", { class: "http", text: "" }));
  }
  if (task.error && task.status !== "queued") cell.append(el("span", { class: "reason", text: task.error.message }));
  return cell;
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
