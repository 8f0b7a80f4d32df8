// One crawl (#/crawl/ID): its progress bar, pages by status, links skipped by reason, pages per depth, its
// settings, a link to its pages in the jobs list and a Cancel button; kept live by crawl messages and a slow poll.

import { addressOf } from "./address.js";
import { api, canChange } from "./api.js";
import { confirmAction } from "./batch.js";
import { progressText, statusClass } from "./crawls.js";
import { count, el, jobMarks } from "./format.js";
import { when } from "./deliveries.js";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const SKIPS = { robots: "disallowed by robots.txt", scope: "out of scope or filtered out", duplicate: "already in the crawl",
  limit: "over max pages" };
const POLL_MS = 2000;     // live even without crawl messages from the server
const DEPTHS_MS = 3000;   // the depth table is re-read at most this often while the crawl runs
const DEPTH_PAGE = 1000;  // pages read per request for the depth table...
const DEPTH_READS = 3;    // ...and at most this many requests: past that, the table says it is a sample

export class CrawlView {
  constructor(root) {
    this.root = root;
    this.id = null;
    this.crawl = null;
    this.version = 0;  // bumped by every state shown: a poll answer older than it is dropped
    this.polling = false;
    this.timer = null;
    this.depthsAt = 0;
    this.depthsReading = false;
    const $ = (id) => document.getElementById(id);
    Object.assign(this, { title: $("crawl-title"), idText: $("crawl-id"), error: $("crawl-error"), main: $("crawl-main"),
      progress: $("crawl-progress"), summary: $("crawl-summary"), skipped: $("crawl-skipped"), depths: $("crawl-depths"),
      depthsNote: $("crawl-depths-note"), facts: $("crawl-facts"), jobs: $("crawl-jobs"), status: $("crawl-status"),
      cancelButton: $("crawl-cancel") });
    this.cancelButton.addEventListener("click", () => this.cancel());
  }

  async open({ id }) {
    if (id === this.id) return;
    this.close();
    this.id = id;
    this.idText.textContent = id;
    this.jobs.href = addressOf({ crawl: id });
    this.root.hidden = false;
    this.main.hidden = true;
    this.error.hidden = true;
    this.status.textContent = "";
    this.depths.replaceChildren();
    this.depthsNote.textContent = "";
    this.depthsAt = 0;
    this.title.focus();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    await this.refresh();
  }

  close() {
    clearInterval(this.timer);
    this.timer = null;
    this.id = null;
    this.crawl = null;
    this.root.hidden = true;
  }

  poll() {
    if (!this.id || this.polling || document.hidden || (this.crawl && this.crawl.finished_at)) return;
    this.polling = true;
    this.refresh().finally(() => { this.polling = false; });
  }

  async refresh() {
    const { id, version } = this;
    const { status, body } = await api("GET", `/crawls/${encodeURIComponent(id)}`);
    if (id !== this.id || version !== this.version) return;  // closed, switched, or a newer state came live
    if (status === 200) this.apply(body.crawl);
    else this.fail(status, body);
  }

  // A state of a crawl, from the API or the live link; other crawls are not this view's business.
  apply(crawl) {
    if (!this.id || !crawl || crawl.id !== this.id) return;
    const before = this.crawl;
    this.version += 1;
    this.crawl = crawl;
    this.error.hidden = true;
    this.main.hidden = false;
    this.render(crawl);
    const ended = before && before.status === "running" && crawl.status !== "running";
    if (ended) this.status.textContent = `Crawl ${crawl.status}: ${progressText(crawl)}.`;
    if (ended || (before && !before.finished_at && crawl.finished_at) || Date.now() - this.depthsAt > DEPTHS_MS) {
      this.readDepths();
    }
  }

  fail(status, body) {
    this.error.textContent = body?.error?.message || `the server answered ${status}`;
    this.error.hidden = false;
    if (status === 400 || status === 404) {  // this id will never load: stop asking
      clearInterval(this.timer);
      this.main.hidden = true;
    }
  }

  render(crawl) {
    const c = crawl.counts;
    const done = (c.completed || 0) + (c.failed || 0) + (c.cancelled || 0);
    const text = `${crawl.status}: ${progressText(crawl)}${crawl.seeding ? "; still reading sitemaps" : ""}`;
    this.progress.max = Math.max(crawl.discovered, done, 1);
    this.progress.value = done;
    this.progress.setAttribute("aria-valuetext", text);
    this.progress.classList.toggle("done", crawl.status !== "running");
    this.summary.replaceChildren(el("span", { class: `badge ${statusClass(crawl.status)}`, text: crawl.status }),
      ` ${progressText(crawl)}${crawl.seeding ? "; still reading sitemaps" : ""}`);
    for (const status of STATUSES) {
      this.root.querySelector(`[data-crawl-count=${status}]`).textContent = count(c[status]);
    }
    this.skipped.replaceChildren(...Object.entries(SKIPS).flatMap(([key, name]) =>
      [el("dt", { text: name }), el("dd", { "data-skipped": key, text: count(crawl.skipped[key]) })]));
    const rows = [["Seeds", crawl.seeds.join("\n")], ["Scope", crawl.scope], ["Max depth", String(crawl.max_depth)],
      ["Max pages", count(crawl.max_pages)], ["Include", crawl.include.join("  ")], ["Exclude", crawl.exclude.join("  ")],
      ["Sitemaps", crawl.sitemap], ["robots.txt", crawl.robots], ["Ignore query", crawl.ignore_query ? "yes" : ""],
      ["Started", when(crawl.created_at)], ["Finished", crawl.finished_at ? when(crawl.finished_at) : "not yet"],
      ["Tags", jobMarks({ tags: crawl.tags })]];
    this.facts.replaceChildren(...rows.filter(([, v]) => v).flatMap(([name, value]) =>
      [el("dt", { text: name }), el("dd", { class: name === "Seeds" ? "mono seeds" : "" }, value)]));
    this.cancelButton.hidden = crawl.status !== "running" || !canChange();
  }

  // Pages per depth, from the listing of the crawl's pages (bounded: a big crawl's table is a sample).
  async readDepths() {
    if (this.depthsReading) return;
    this.depthsReading = true;
    this.depthsAt = Date.now();
    const id = this.id;
    try {
      const byDepth = new Map();
      let cursor = "";
      let read = 0;
      let more = false;
      for (let i = 0; i < DEPTH_READS; i++) {
        const query = new URLSearchParams({ crawl: id, limit: String(DEPTH_PAGE) });
        if (cursor) query.set("cursor", cursor);
        const { status, body } = await api("GET", `/queue_tasks?${query}`);
        if (id !== this.id || status !== 200) return;
        for (const task of body.tasks) byDepth.set(task.depth ?? 0, (byDepth.get(task.depth ?? 0) || 0) + 1);
        read += body.tasks.length;
        cursor = body.next;
        more = Boolean(cursor);
        if (!cursor) break;
      }
      this.drawDepths(byDepth, read, more);
    } finally {
      this.depthsReading = false;
    }
  }

  drawDepths(byDepth, read, sampled) {
    if (read === 0) {
      this.depths.replaceChildren(el("p", { class: "muted", text: "No page yet." }));
      this.depthsNote.textContent = "";
      return;
    }
    const deepest = Math.max(...byDepth.keys());
    const most = Math.max(...byDepth.values());
    const rows = [];
    for (let depth = 0; depth <= deepest; depth++) {
      const pages = byDepth.get(depth) || 0;
      rows.push(el("tr", { "data-depth": String(depth) },
        el("th", { scope: "row", text: depth === 0 ? "0 (seeds)" : String(depth) }),
        el("td", { class: "num", text: count(pages) }),
        el("td", { class: "bar-cell", "aria-hidden": "true" },
          el("span", { class: "bar", style: `width: ${Math.max(2, Math.round((pages / most) * 100))}%` }))));
    }
    this.depths.replaceChildren(el("table", { class: "depths", "aria-labelledby": "crawl-depths-title" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Depth" }), el("th", { scope: "col", text: "Pages" }),
        el("th", { scope: "col" }, el("span", { class: "sr", text: "Bar" })))),
      el("tbody", {}, ...rows)));
    this.depthsNote.textContent = sampled
      ? `A sample: the newest ${count(read)} pages of ${count(this.crawl?.discovered)}.`
      : `All ${count(read)} pages.`;
  }

  async cancel() {
    const c = this.crawl.counts;
    const unfinished = (c.queued || 0) + (c.running || 0);
    const pages = `${count(unfinished)} unfinished page${unfinished === 1 ? "" : "s"}`;
    const sure = await confirmAction(`Cancel this crawl? No more links are followed and its ${pages} are cancelled; ` +
      "pages already fetched keep their results.", "Cancel crawl", "Keep crawling");
    if (!sure) return;
    const id = this.id;
    const { status, body } = await api("DELETE", `/crawls/${encodeURIComponent(id)}`);
    if (id !== this.id) return;
    if (status !== 200) {
      this.error.textContent = body?.error?.message || `the server answered ${status}`;
      this.error.hidden = false;
      return;
    }
    this.apply(body.crawl);
    this.status.textContent = `Crawl cancelled: ${progressText(body.crawl)}.`;
    this.title.focus();  // the button pressed has just been hidden
  }
}
