// The Schedules view (#/schedules, #/schedules?cursor=C): every recurring fetch (GET /schedules, newest first),
// with its period, state, runs, next run, its last run and the last time its page changed (the newest result
// of its URL that `GET /history` marks as changed), and a Stop button that asks first and then sends
// DELETE /schedules/:id. It reads itself again every POLL_MS while shown; a row changes in place.

import { pageAddress } from "./address.js";
import { api, canChange } from "./api.js";
import { confirmAction } from "./batch.js";
import { count, el } from "./format.js";
import { when } from "./deliveries.js";

const POLL_MS = 5000;
const PAGE = 50;

// "#/schedules?cursor=C" is this view; the app's router asks here before its own addresses.
export function readSchedulesAddress(hash) {
  const [path, query = ""] = (hash || "").split("?");
  return path === "#/schedules" ? { kind: "page", name: "#/schedules", params: new URLSearchParams(query) } : null;
}

// 3600 -> "every hour", 90 -> "every 1.5 minutes".
export function period(seconds) {
  const units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  const [size, name] = units.find(([size]) => seconds >= size && (seconds % size === 0 || size === 60)) || [1, "second"];
  const n = Math.round((seconds / size) * 10) / 10;
  return n === 1 ? `every ${name}` : `every ${n.toLocaleString()} ${name}s`;
}

// When the page of a URL last changed: the newest of its first results marked changed (null: none seen).
async function lastChange(url) {
  const { status, body } = await api("GET", `/history?url=${encodeURIComponent(url)}&limit=${PAGE}`);
  if (status !== 200) return { error: true };
  const changed = body.results.find((r) => r.changed === true);
  return { at: changed?.fetched_at || null, id: changed?.id || null, results: body.results.length, more: Boolean(body.next) };
}

export class SchedulesView {
  constructor(section) {
    this.section = section;
    this.body = section.querySelector("#schedules-table tbody");
    this.empty = section.querySelector("#schedules-empty");
    this.error = section.querySelector("#schedules-error");
    this.status = section.querySelector("#schedules-status");
    this.newest = section.querySelector("#schedules-newest");
    this.older = section.querySelector("#schedules-older");
    this.timer = null;
    this.cursor = "";
  }

  async open(where) {
    this.section.hidden = false;
    this.cursor = where.params?.get("cursor") || "";
    this.body.replaceChildren();
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
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (this.cursor) query.set("cursor", this.cursor);
      const { status, body } = await api("GET", `/schedules?${query}`);
      this.error.hidden = status === 200;
      if (status !== 200) {
        this.error.textContent = body?.error?.message || `the server answered ${status}`;
        return;
      }
      const changes = await Promise.all(body.schedules.map((s) => lastChange(s.url)));
      this.show(body.schedules, changes);
      this.newest.hidden = !this.cursor;
      this.older.hidden = !body.next;
      if (body.next) this.older.href = pageAddress("#/schedules", { cursor: body.next });
    } finally {
      this.loading = false;
    }
  }

  // A row per schedule, rewritten only when something it shows changed (so focus stays on its button).
  show(schedules, changes) {
    this.empty.hidden = schedules.length > 0;
    const rows = new Map([...this.body.rows].map((tr) => [tr.dataset.schedule, tr]));
    const wanted = new Set(schedules.map((s) => s.id));
    for (const [id, tr] of rows) if (!wanted.has(id)) tr.remove();
    let previous = null;
    schedules.forEach((s, i) => {
      const key = JSON.stringify([s, changes[i]]);
      let tr = rows.get(s.id);
      if (!tr || tr.dataset.key !== key) {
        const fresh = this.row(s, changes[i]);
        fresh.dataset.key = key;
        const focused = tr?.contains(document.activeElement);
        if (tr) tr.replaceWith(fresh); else this.body.append(fresh);
        tr = fresh;
        if (focused) (tr.querySelector("button") || this.section.querySelector("h2")).focus();
      }
      const place = previous ? previous.nextElementSibling : this.body.firstElementChild;
      if (place !== tr) this.body.insertBefore(tr, place);
      previous = tr;
    });
  }

  row(s, change) {
    const runs = el("a", { href: pageAddress("#/jobs", { url: s.url }), text: count(s.runs),
      "aria-label": `${count(s.runs)} finished runs: the jobs of ${s.url}` });
    const last = s.last_task_id ? el("a", { href: `#/job/${encodeURIComponent(s.last_task_id)}`, class: "mono",
      text: "last run", "aria-label": `the last completed run of ${s.url}` }) : el("span", { class: "muted", text: "none yet" });
    let changed;
    if (change.error) changed = el("span", { class: "muted", text: "unknown" });
    else if (change.at) {
      changed = el("a", { href: `#/job/${encodeURIComponent(change.id)}/history`,
        "aria-label": `what changed in ${s.url}` }, when(change.at));
    } else {
      changed = el("span", { class: "muted", text: change.results ? `no change in ${change.more ? "the last " : ""}`
        + `${count(change.results)} result${change.results === 1 ? "" : "s"}` : "no result yet" });
    }
    const state = el("span", { class: `badge ${s.active ? "running" : "cancelled"}`, text: s.active ? "active" : "stopped" });
    const actions = el("td", { class: "actions" });
    if (s.active && canChange()) {
      actions.append(el("button", { type: "button", class: "danger-text", text: "Stop", "aria-label": `Stop fetching ${s.url}`,
        onclick: () => this.stop(s) }));
    }
    return el("tr", { "data-schedule": s.id },
      el("td", { class: "url", title: s.url }, el("a", { href: pageAddress("#/jobs", { url: s.url }), text: s.url })),
      el("td", { text: period(s.every) }),
      el("td", {}, state),
      el("td", {}, s.active ? when(s.next_run_at) : el("span", { class: "muted", text: "—" })),
      el("td", {}, changed),
      el("td", {}, last, " · ", runs),
      actions);
  }

  async stop(s) {
    const sure = await confirmAction(`Stop fetching ${s.url} ${period(s.every)}? Its queued run is cancelled; the runs `
      + "already stored stay.", "Stop schedule", "Keep it");
    if (!sure) return;
    const { status, body } = await api("DELETE", `/schedules/${encodeURIComponent(s.id)}`);
    if (status !== 200) {
      this.error.textContent = body?.error?.message || `the server answered ${status}`;
      this.error.hidden = false;
      return;
    }
    this.status.textContent = `Stopped: ${s.url} is no longer fetched.`;
    await this.load();
    this.section.querySelector("h2").focus();  // the button pressed is gone
  }
}
