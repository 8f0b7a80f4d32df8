// Counts that follow the search. A view with a search (any filter besides status and batch) says how many
// jobs it matches ("12 jobs match host:example.com") and, where they could be counted, the status chips count
// that search, not the whole queue. The server's own count is used when it gives one (`matched_counts`, the
// search by status with the status left out: exact however many jobs match, asked with a page of one job);
// when it cannot count the search cheaply it gives none, and the search's newest LIMIT jobs are read (status
// left out) and counted: exact when that is all of them, "at least" otherwise, and then the chips say they
// count the whole queue.

import { api } from "./api.js";
import { searchText } from "./search.js";

const LIMIT = 1000;
const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const EVERY_MS = 3000;  // at most one recount a 3 s while counts messages say the queue moves

// The filters that make a view a search: the chips' queue (or batch) counts do not describe it.
export function searchFilters(filters) {
  const { status, batch, ...rest } = filters;
  return rest;
}

export class Matching {
  constructor(line, chips, onCounts = () => {}) {
    this.line = line;
    this.chips = chips;
    this.onCounts = onCounts;  // the search's counts by status, for the chips
    this.filters = {};
    this.asked = 0;
    this.last = 0;
    this.timer = null;
    this.byStatus = null;   // the search's counts by status, when exact
  }

  // Whether the view is a search (its line is shown, and it is recounted as the queue moves).
  get owns() {
    return Object.keys(searchFilters(this.filters)).length > 0;
  }

  // Whether the chips show this search's counts: the queue's counts messages must not replace them.
  get chipsOwned() {
    return this.owns && this.byStatus !== null;
  }

  // A view was shown: count its search, or say nothing for a view without one.
  show(filters) {
    this.filters = filters;
    this.byStatus = null;
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.owns) {
      this.line.hidden = true;
      this.line.textContent = "";
      this.chips.removeAttribute("data-scope");
      this.chips.setAttribute("aria-label", "filter by status");
      return Promise.resolve(null);
    }
    return this.count();
  }

  // The queue moved (a counts message): recount the search, at most every EVERY_MS.
  moved() {
    if (!this.owns || this.timer) return;
    const wait = Math.max(0, this.last + EVERY_MS - Date.now());
    this.timer = setTimeout(() => { this.timer = null; this.count(); }, wait);
  }

  async count() {
    const mine = ++this.asked;
    this.last = Date.now();
    const { status: statusFilter, ...rest } = this.filters;
    const ask = (limit) => api("GET", `/queue_tasks?${new URLSearchParams({ ...rest, limit: String(limit) })}`);
    let { status, body } = await ask(1);
    if (mine !== this.asked || status !== 200) return null;
    if (!body.matched_counts) {
      ({ status, body } = await ask(LIMIT));
      if (mine !== this.asked || status !== 200) return null;
    }
    const what = searchText(this.filters);
    let byStatus = null;
    let atLeast = null;
    if (body.matched_counts) byStatus = body.matched_counts;
    else if (!body.next) {
      byStatus = Object.fromEntries(STATUSES.map((s) => [s, 0]));
      for (const task of body.tasks) byStatus[task.status] = (byStatus[task.status] || 0) + 1;
    } else {
      atLeast = body.tasks.filter((t) => !statusFilter || t.status === statusFilter).length;
    }
    this.byStatus = byStatus;
    if (byStatus) {
      const n = statusFilter ? byStatus[statusFilter] || 0 : STATUSES.reduce((a, s) => a + (byStatus[s] || 0), 0);
      this.line.textContent = `${n.toLocaleString()} job${n === 1 ? "" : "s"} match ${what}; the chips count this search.`;
      this.chips.dataset.scope = "search";
      this.chips.setAttribute("aria-label", `filter by status (counts of the search ${what})`);
    } else {
      this.line.textContent = `At least ${atLeast.toLocaleString()} job${atLeast === 1 ? "" : "s"} match ${what} `
        + `(the newest ${LIMIT.toLocaleString()} counted); the chips give counts for the whole queue.`;
      this.chips.dataset.scope = "queue";
      this.chips.setAttribute("aria-label", "filter by status (counts for the whole queue)");
    }
    this.line.hidden = false;
    if (byStatus) this.onCounts(byStatus);
    return byStatus;
  }
}

// What an empty list says: why it is empty, naming the search ("No job matches host:x.").
export function emptyNote(filters) {
  const search = searchFilters(filters);
  const code = (text) => Object.assign(document.createElement("code"), { textContent: text });
  if (Object.keys(search).length) return ["No job matches ", code(searchText(filters)), "."];
  const where = filters.batch ? " in this batch" : "";
  if (filters.status) return [`No ${filters.status} job${where}.`];
  return [filters.batch ? "This batch has no jobs." : "No jobs here yet."];
}
