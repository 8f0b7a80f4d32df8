// The crawls list (#/crawls, #/crawls?cursor=C for an older page): each crawl's status, seeds, pages done of
// those found and of its limit, start and finish; kept live by crawl messages. Above it, the "Start a crawl"
// form, whose refusals are shown beside the field the server names.

import { pageAddress } from "./address.js";
import { api, canChange } from "./api.js";
import { count, el } from "./format.js";
import { when } from "./deliveries.js";

const PAGE_SIZE = 50;
const FINISHED = ["completed", "failed", "cancelled"];
// The fields of the form, by the names the server's 400 messages start with ("max_pages: must be ...").
const FIELDS = { url: "crawl-url", urls: "crawl-url", max_pages: "crawl-max-pages", max_depth: "crawl-max-depth",
  scope: "crawl-scope" };
// Codes that are about the URL itself, whose message (like a single submission's) names no field.
const URL_CODES = ["invalid_url", "url_too_long", "unsupported_scheme", "blocked", "unknown_profile",
  "profile_not_allowed"];

// Pages of a crawl finished one way or another.
export function pagesDone(crawl) {
  return FINISHED.reduce((n, s) => n + (crawl.counts[s] || 0), 0);
}

// The crawl's bar: pages done of the pages found so far, never more than its limit.
export function crawlBar(crawl, label) {
  const done = pagesDone(crawl);
  const bar = el("progress", { max: String(Math.max(crawl.discovered, done, 1)), value: String(done), "aria-label": label,
    class: crawl.status === "running" ? "" : "done" });
  return bar;
}

export function progressText(crawl) {
  return `${count(pagesDone(crawl))} of ${count(crawl.discovered)} found done (at most ${count(crawl.max_pages)})`;
}

export class CrawlsView {
  constructor(section, { go }) {
    this.section = section;
    this.go = go;
    this.list = section.querySelector("#crawls-list");
    this.problem = section.querySelector("#crawls-status");
    this.older = section.querySelector("#crawls-older");
    this.newest = section.querySelector("#crawls-newest");
    this.form = section.querySelector("#crawl-form");
    this.formError = section.querySelector("#crawl-form-error");
    this.rows = new Map();  // crawl id -> its row, patched by live messages
    this.cursor = "";
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.start(); });
    for (const id of new Set(Object.values(FIELDS))) {
      const input = document.getElementById(id);
      input.addEventListener("input", () => this.clearField(input));
    }
  }

  async open({ params }) {
    this.section.hidden = false;
    this.form.hidden = !canChange();
    this.cursor = params.get("cursor") || "";
    await this.load();
    if (!this.section.contains(document.activeElement)) this.section.querySelector("h2").focus();
  }

  close() {
    this.section.hidden = true;
    this.rows.clear();
  }

  async load() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (this.cursor) query.set("cursor", this.cursor);
    const cursor = this.cursor;
    const { status, body } = await api("GET", `/crawls?${query}`);
    if (cursor !== this.cursor || this.section.hidden) return;
    this.problem.hidden = status === 200;
    if (status !== 200) {
      this.problem.textContent = body?.error?.message || `the server answered ${status}`;
      return;
    }
    this.rows.clear();
    if (body.crawls.length === 0) {
      this.list.replaceChildren(el("p", { class: "muted", text: this.cursor ? "No older crawls."
        : "No crawls yet: start one above, or POST /crawls." }));
    } else {
      const rows = body.crawls.map((c) => this.row(c));
      this.list.replaceChildren(el("table", { id: "crawls-table", "aria-labelledby": "crawls-list-title" },
        el("thead", {}, el("tr", {}, ...["Crawl", "Status", "Seeds", "Progress", "Pages", "Started", "Finished"]
          .map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...rows)));
    }
    this.older.hidden = !body.next;
    if (body.next) this.older.href = pageAddress("#/crawls", { cursor: body.next });
    this.newest.hidden = !this.cursor;
  }

  row(crawl) {
    const seeds = crawl.seeds.length > 1 ? `${crawl.seeds[0]} and ${count(crawl.seeds.length - 1)} more` : crawl.seeds[0];
    const tr = el("tr", { "data-crawl": crawl.id },
      el("td", {}, el("a", { href: `#/crawl/${encodeURIComponent(crawl.id)}`, class: "mono", text: crawl.id })),
      el("td", { "data-cell": "status" }),
      el("td", { class: "url", title: crawl.seeds.join("\n"), text: seeds }),
      el("td", { "data-cell": "bar" }),
      el("td", { "data-cell": "pages" }),
      el("td", {}, when(crawl.created_at)),
      el("td", { "data-cell": "finished" }));
    this.rows.set(crawl.id, tr);
    this.fill(tr, crawl);
    return tr;
  }

  fill(tr, crawl) {
    const cell = (name) => tr.querySelector(`[data-cell=${name}]`);
    cell("status").replaceChildren(el("span", { class: `badge ${statusClass(crawl.status)}`, text: crawl.status }));
    cell("bar").replaceChildren(crawlBar(crawl, `crawl ${crawl.id}: ${progressText(crawl)}`));
    cell("pages").textContent = `${count(pagesDone(crawl))} / ${count(crawl.discovered)} (max ${count(crawl.max_pages)})`;
    cell("finished").replaceChildren(when(crawl.finished_at));
  }

  // A crawl's latest state from the live link: its row changes in place (a new crawl waits for the next load).
  apply(crawl) {
    const tr = !this.section.hidden && this.rows.get(crawl.id);
    if (tr) this.fill(tr, crawl);
  }

  async start() {
    this.formError.hidden = true;
    for (const id of new Set(Object.values(FIELDS))) this.clearField(document.getElementById(id));
    const url = document.getElementById("crawl-url").value.trim();
    if (!url) return this.fieldError("url", "type the URL the crawl starts from");
    const body = { url, scope: document.getElementById("crawl-scope").value };
    for (const name of ["max_pages", "max_depth"]) {
      const input = document.getElementById(FIELDS[name]);
      if (input.validity.badInput) return this.fieldError(name, "must be a whole number");
      if (input.value !== "") body[name] = Number(input.value);
    }
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    const { status, body: answer } = await api("POST", "/crawls", body);
    button.disabled = false;
    if (status === 201) {
      document.getElementById("crawl-url").value = "";
      this.go(`#/crawl/${encodeURIComponent(answer.crawl.id)}`);
      return undefined;
    }
    const message = answer?.error?.message || `the server answered ${status}`;
    const named = /^(\w+)(?:\[\d+\])?: (.*)$/s.exec(message);
    if (named && FIELDS[named[1]]) return this.fieldError(named[1], named[2]);
    if (URL_CODES.includes(answer?.error?.code)) return this.fieldError("url", message);
    this.formError.textContent = `Not started: ${message}`;
    this.formError.hidden = false;
    return undefined;
  }

  // Say what is wrong under the field itself, mark it invalid and put the cursor there.
  fieldError(name, message) {
    const input = document.getElementById(FIELDS[name]);
    const box = document.getElementById(`${FIELDS[name]}-error`);
    box.textContent = `Not started: ${message}.`.replace(/\.\.$/, ".");
    box.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  clearField(input) {
    input.removeAttribute("aria-invalid");
    const box = document.getElementById(`${input.id}-error`);
    if (box) { box.hidden = true; box.textContent = ""; }
  }
}

export function statusClass(status) {
  return status === "finished" ? "completed" : status === "running" ? "running" : "cancelled";
}
