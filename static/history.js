// The History tab of a job: every stored result of the job's URL, newest first, two of them picked to
// compare, and what changed between them. A fetched page is untrusted: its text and headers reach the
// DOM only as text nodes (textContent), so nothing of it is ever parsed as HTML in the dashboard's origin.

import { api } from "./api.js";
import { bytes, el } from "./format.js";

const PAGE = 50;
const BODY = { true: "changed", false: "unchanged", null: "first" };
let made = 0;  // radio group names stay unique while an older view is still being replaced
let showing = null;  // the History view last opened: live task messages reach it

// A time in the reader's zone, with UTC on hover.
function local(iso) {
  return iso ? el("time", { datetime: iso, title: `${iso} (UTC)`, text: new Date(iso).toLocaleString() }) : "unknown";
}

const when = (result) => (result?.fetched_at ? new Date(result.fetched_at).toLocaleString() : "an unknown time");

// One line of the diff: its sign stays visible, and the word is there for screen readers (not copied).
function marked(tag, word, line) {
  return el(tag, { class: "line" }, el("span", { class: "sr nocopy", text: `${word}: ` }), line);
}

// The unified diff as escaped text, one element per line; the `---`/`+++` file names (the two ids) are
// left out since the heading names both results.
function diffLines(diff) {
  const lines = diff.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const start = lines[0]?.startsWith("--- ") && lines[1]?.startsWith("+++ ") ? 2 : 0;
  const pre = el("pre", { class: "diff", tabindex: "0", "aria-label": "the lines that changed, as a unified diff" });
  let added = 0;
  let removed = 0;
  for (const line of lines.slice(start)) {
    if (line.startsWith("+")) { added += 1; pre.append(marked("ins", "added", line)); }
    else if (line.startsWith("-")) { removed += 1; pre.append(marked("del", "removed", line)); }
    else if (line.startsWith("@@")) pre.append(el("span", { class: "line hunk", text: line }));
    else if (line.startsWith("\\")) pre.append(el("span", { class: "line meta", text: line }));
    else pre.append(el("span", { class: "line", text: line }));
  }
  return { pre, added, removed };
}

function headerChanges(headers = {}) {
  const rows = [
    ...Object.entries(headers.added || {}).map(([name, value]) => [name, "added", null, value]),
    ...Object.entries(headers.removed || {}).map(([name, value]) => [name, "removed", value, null]),
    ...Object.entries(headers.changed || {}).map(([name, [before, after]]) => [name, "changed", before, after]),
  ].sort((a, b) => a[0].localeCompare(b[0]));
  if (rows.length === 0) return el("p", { class: "muted", text: "No response header changed." });
  const cell = (value) => (value === null ? el("td", { class: "muted", text: "(none)" }) : el("td", { text: value }));
  return el("table", { class: "kv header-changes" }, el("caption", { text: "Header differences" }),
    el("thead", {}, el("tr", {}, ...["Header", "Change", "Before", "After"].map((t) => el("th", { scope: "col", text: t })))),
    el("tbody", {}, ...rows.map(([name, change, before, after]) =>
      el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: change }), cell(before), cell(after)))));
}

// What the diff answer says, in the order a reader needs it; returns the parts and a one-line summary.
function changesOf(answer) {
  const parts = [];
  if (answer.truncated) {
    parts.push(el("p", { class: "note cut" }, el("strong", { text: "Incomplete diff: " }), answer.note || "it was cut"));
  } else if (answer.note) {
    parts.push(el("p", { class: "note", text: `Note: ${answer.note}.` }));
  }
  parts.push(headerChanges(answer.headers));
  if (answer.same_body) {
    parts.push(el("p", { text: "The two bodies are identical (same SHA-256)." }));
    return { parts, summary: "identical bodies" };
  }
  if (!answer.diff) {
    if (!answer.note) parts.push(el("p", { text: "The texts read the same; only their bytes differ." }));
    return { parts, summary: "bodies differ, no text difference shown" };
  }
  const { pre, added, removed } = diffLines(answer.diff);
  const counts = `${added} line${added === 1 ? "" : "s"} added, ${removed} removed`;
  parts.push(el("p", { class: "muted legend", text: `${counts}. Added lines start with + and have a solid bar; `
    + "removed lines start with - and have a dashed bar." }), pre);
  return { parts, summary: counts };
}

export class HistoryView {
  constructor(task) {
    this.jobId = task.id;
    this.url = task.url;
    this.name = `history${++made}`;
    this.order = [];  // result ids, newest first
    this.results = new Map();
    this.asked = 0;  // the newest diff request: an older answer arriving late is dropped
    this.status = el("p", { class: "muted", role: "status" });
    this.error = el("p", { class: "error", role: "alert", hidden: true });
    this.rows = el("tbody");
    const th = (text) => el("th", { scope: "col", text });
    this.more = el("button", { type: "button", text: "Older results", hidden: true, onclick: () => this.older() });
    this.changes = el("div", { class: "changes" });
    // "Changes only": the results whose body differed from the one before (and this job's), the rest hidden
    this.onlyChanges = el("input", { type: "checkbox", id: `${this.name}-only`,
      onchange: () => this.list.classList.toggle("changes-only", this.onlyChanges.checked) });
    this.list = el("table", { class: "history-list" },
      el("caption", { class: "sr", text: "Stored results of this URL, newest first; pick two to compare" }),
      el("thead", {}, el("tr", {}, th("From"), th("To"), th("Fetched"), th("HTTP"), th("Size"), th("SHA-256"),
        th("Body"))), this.rows);
    // the filter comes after the list in the keyboard's order: Tab goes from the panel to the picked results first
    this.root = el("div", { class: "history" }, el("h3", { text: "Stored results of this URL" }), this.status,
      this.error, el("div", { class: "table-wrap" }, this.list),
      el("div", { class: "row" }, el("label", { class: "check changes-filter", for: `${this.name}-only` }, this.onlyChanges,
        " Changes only (results whose body differed from the one before)"), this.more), el("h3", { text: "Changes" }), this.changes);
    this.root.addEventListener("change", (event) => { if (event.target.type === "radio") this.compare(); });
  }

  say(text) { this.status.textContent = text; }

  fail(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  // The first tab opening reads the list and compares this result with the one before it.
  async load() {
    if (this.loading) return;
    this.loading = true;
    showing = this;
    this.say("Loading the results of this URL…");
    const page = await this.read(null);
    if (!page) { this.loading = false; return; }  // opening the tab again tries again
    this.add(page.results);
    this.setNext(page.next);
    if (this.order.length === 0) {
      this.say("No stored result for this URL yet.");
      this.changes.replaceChildren(el("p", { class: "muted", text: "Nothing to compare." }));
      return;
    }
    const to = this.results.has(this.jobId) ? this.jobId : this.order[0];
    this.pick("to", to);
    this.pick("from", this.order[this.order.indexOf(to) + 1]);
    await this.compare();
  }

  async read(cursor) {
    const path = cursor ? `/history?cursor=${encodeURIComponent(cursor)}`
      : `/history?url=${encodeURIComponent(this.url)}&limit=${PAGE}`;
    const { status, body } = await api("GET", path);
    if (status !== 200) {
      this.fail(body?.error?.message || `cannot read this URL's history (HTTP ${status})`);
      return null;
    }
    this.fail("");
    return body;
  }

  setNext(next) {
    this.next = next;
    this.more.hidden = !next;
  }

  // Rows for results not shown yet: `atTop` for newer ones (a live update), else after the others.
  add(results, atTop = false) {
    const fresh = results.filter((r) => !this.results.has(r.id));
    const before = atTop ? this.rows.firstChild : null;
    for (const result of fresh) {
      this.results.set(result.id, result);
      this.rows.insertBefore(this.row(result), before);
    }
    const ids = fresh.map((r) => r.id);
    this.order = atTop ? [...ids, ...this.order] : [...this.order, ...ids];
    return fresh.length;
  }

  row(r) {
    const radio = (side) => el("input", { type: "radio", name: `${this.name}-${side}`, value: r.id,
      "aria-label": `compare ${side} the result fetched ${when(r)}${r.id === this.jobId ? " (this job)" : ""}` });
    const fetched = r.id === this.jobId ? el("span", {}, local(r.fetched_at), " (this job)")
      : el("a", { href: `#/job/${encodeURIComponent(r.id)}/history` }, local(r.fetched_at));
    const body = BODY[String(r.changed)] ?? "";
    return el("tr", { "data-id": r.id, "data-changed": String(r.changed === true || r.id === this.jobId) },
      el("td", {}, radio("from")), el("td", {}, radio("to")), el("td", {}, fetched),
      el("td", { text: r.http_status ?? "" }), el("td", { text: bytes(r.size) }),
      el("td", { class: "mono", title: r.sha256 || "", text: (r.sha256 || "").slice(0, 12) }),
      el("td", {}, el("span", { class: `body-${body}`, text: body })));
  }

  pick(side, id) {
    for (const input of this.rows.querySelectorAll(`input[name="${this.name}-${side}"]`)) {
      input.checked = input.value === id;
    }
  }

  picked(side) {
    return this.rows.querySelector(`input[name="${this.name}-${side}"]:checked`)?.value || null;
  }

  async compare() {
    const from = this.picked("from");
    const to = this.picked("to");
    const mine = ++this.asked;
    const count = `${this.order.length} result${this.order.length === 1 ? "" : "s"}${this.next ? " so far" : ""}`;
    if (!from || !to || from === to) {
      const why = !from && to === this.jobId && this.order.at(-1) === to && !this.next
        ? "This is the first stored result of this URL: pick another one to compare with."
        : "Pick two different results to compare: one under From, one under To.";
      this.changes.replaceChildren(el("p", { class: "muted", text: why }));
      this.say(`${count}. ${why}`);
      return;
    }
    this.changes.replaceChildren(el("p", { class: "muted", text: "Comparing…" }));
    const { status, body } = await api("GET", `/results/${encodeURIComponent(to)}/diff?against=${encodeURIComponent(from)}`);
    if (mine !== this.asked) return;
    if (status !== 200) {
      this.changes.replaceChildren(el("p", { class: "error", role: "alert",
        text: body?.error?.message || `cannot compare these results (HTTP ${status})` }));
      return;
    }
    const { parts, summary } = changesOf(body);
    const [older, newer] = [this.results.get(from), this.results.get(to)];
    this.changes.replaceChildren(el("p", {}, "From the result fetched ", local(older?.fetched_at),
      " to the one fetched ", local(newer?.fetched_at), ":"), ...parts);
    this.say(`${count}. Changes from ${when(older)} to ${when(newer)}: ${summary}.`);
  }

  async older() {
    const page = await this.read(this.next);
    if (!page) return;
    const added = this.add(page.results);
    this.setNext(page.next);
    this.say(`${added} older result${added === 1 ? "" : "s"} added below (${this.order.length} in all).`);
  }

  // A result of this URL finished while the tab is open: new rows go on top, the selection, the diff and
  // the focus stay where they are, and the status line says what came.
  async refresh() {
    if (this.refreshing) { this.again = true; return; }
    this.refreshing = true;
    try {
      do {
        this.again = false;
        const page = await this.read(null);
        const added = page ? this.add(page.results, true) : 0;
        if (added) this.say(`${added} newer result${added === 1 ? "" : "s"} added at the top (${this.order.length} in all).`);
      } while (this.again);
    } finally {
      this.refreshing = false;
    }
  }
}

// Live task messages: a result of the URL whose History tab is open appears in its list.
export function noticeTask(task) {
  const view = showing;
  if (!view || !view.loading || task.status !== "completed" || task.url !== view.url) return;
  if (!view.root.isConnected || !view.root.closest("dialog")?.open) return;
  view.refresh();
}
