// The dashboard: wires the submit form, the live link, the jobs table, the batch view, the job view and the
// other pages (batches, crawls, one crawl, hosts, webhook deliveries) together. The address alone says what is shown (address.js): every change of it goes through route(),
// which sets the list, the search box, the status chips and the batch view from it; the controls only
// write the address.

import { addressOf, readAddress as readJobsAddress } from "./address.js";
import { api, canChange, forgetToken, token } from "./api.js";
import { BatchView } from "./batch.js";
import { BatchesView } from "./batches.js";
import { CrawlView } from "./crawl.js";
import { CrawlsView } from "./crawls.js";
import { DeliveriesView } from "./deliveries.js";
import { noticeTask, openDetail } from "./detail.js";
import { JobsTable, showCounts } from "./jobs.js";
import { LiveLink } from "./live.js";
import { Matching } from "./matching.js";
import { BulkActions } from "./bulk.js";
import { labelTables } from "./cards.js";
import { parseSearch, searchText } from "./search.js";
import { groupSummary } from "./groups.js";
import { HostsView } from "./hosts.js";
import { readSchedulesAddress, SchedulesView } from "./schedules.js";
import { Sparkline } from "./spark.js";
import { StatsPanel } from "./stats.js";
import { wireSubmitForm } from "./submit.js";

const readAddress = (hash) => readSchedulesAddress(hash) || readJobsAddress(hash);
let jobShown = null;  // the job the dialog was opened for
let openedOver = null;  // the view's address a job was opened from, one step back in the history
const openJob = (id, tab) => {
  jobShown = id;
  return openDetail(id, { onChange: (t) => table.apply(t), tab });
};
let bulk = null;  // the actions on many, once the server has said whether this token may act
const table = new JobsTable(document.getElementById("jobs"), {
  onView: (view) => link.sendView(view),
  onActed: (action, task) => bulk?.acted(action, task),
  onSelect: () => bulk?.render(),
});
const spark = new Sparkline(document.getElementById("spark"), document.getElementById("rate"));
// A search's chips count the search where it can be counted (matching.js), else the whole queue.
const matching = new Matching(document.getElementById("matching"), document.getElementById("filters"), showCounts);
// While a batch is open the status filters count its jobs; the sparkline always follows the whole queue.
const batchView = new BatchView(document.getElementById("batch"), {
  onCounts: (c) => { if (!matching.chipsOwned) showCounts(c); setTitleCount(c); } });

function counts(c) {
  if (!c) return;
  table.seeTotal(c);
  if (!batchView.id) { if (!matching.chipsOwned) showCounts(c); setTitleCount(c); }
  matching.moved();
  spark.observe(c);
}

function setTitleCount(c) {
  const n = viewCount(c);
  if (n === titleCount) return;
  titleCount = n;
  titleView();
}

function pressFilter(status) {
  for (const b of document.querySelectorAll("#filters button")) b.setAttribute("aria-pressed", String(b.dataset.status === status));
}

const deliveries = new DeliveriesView(document.getElementById("deliveries"));
const batches = new BatchesView(document.getElementById("batches"));
const crawls = new CrawlsView(document.getElementById("crawls"), { go: (address) => go(address) });
const crawlView = new CrawlView(document.getElementById("crawl"));
const hosts = new HostsView(document.getElementById("hosts"), { go: (address) => go(address) });
const schedules = new SchedulesView(document.getElementById("schedules"));
const PAGES = { "#/deliveries": deliveries, "#/batches": batches, "#/crawls": crawls, "#/crawl": crawlView,
  "#/hosts": hosts, "#/schedules": schedules };
let viewAddress = null;  // the address of the jobs view shown (beneath an open job, too)

// The jobs view exactly as an address says: list, search box, chips, batch view and title.
function showJobs({ filters, pageNo }) {
  viewAddress = addressOf(filters, pageNo);
  const spelled = location.hash || "#/";
  if (spelled !== viewAddress && readAddress(spelled).kind === "jobs") {
    history.replaceState(null, "", viewAddress);  // one spelling per view (#/jobs?batch=X is #/batch/X)
  }
  document.getElementById("search-text").value = searchText(filters);
  pressFilter(filters.status || "");
  document.getElementById("jobs-title").textContent = filters.batch ? "Jobs in this batch" : "Jobs";
  if (filters.batch) batchView.open(filters.batch);
  else batchView.close();
  const groups = document.getElementById("groups");
  groups.hidden = true;
  bulk?.render();
  matching.show(filters);
  table.show(filters, pageNo).then((c) => {
    counts(c);
    if (viewAddress === addressOf(filters, pageNo)) groupSummary(groups, filters);
  });
}

// The header link of the view shown is marked as the current page; the tab's title names the view and its count.
const VIEW_NAMES = { "#/batches": "Batches", "#/deliveries": "Webhook deliveries", "#/crawls": "Crawls",
  "#/crawl": "Crawl", "#/hosts": "Hosts", "#/schedules": "Schedules" };
function markView(where) {
  // a jobs view's first page (a later page is still that view); one batch's jobs are under Batches
  const filters = where.kind === "page" ? null : readAddress(viewAddress || "#/").filters || {};
  const bare = where.kind === "page" ? (where.name === "#/crawl" ? "#/crawls" : where.name)
    : filters.batch ? "#/batches" : addressOf(filters);
  let current = null;
  for (const a of document.querySelectorAll("nav.views a")) {
    const here = a.getAttribute("href") === bare;
    if (here) { a.setAttribute("aria-current", "page"); current = a; } else a.removeAttribute("aria-current");
  }
  titleView(where, current);
}

let titleCount = null;  // how many jobs the jobs view shown holds, from its latest counts
function titleView(where = readAddress(location.hash), current = document.querySelector("nav.views a[aria-current]")) {
  let name;
  if (where.kind === "page") name = VIEW_NAMES[where.name] + (where.id ? ` ${where.id}` : "");
  else {
    const filters = readAddress(viewAddress || "#/").filters || {};
    name = filters.batch ? `Batch ${filters.batch}` : current ? current.textContent : `Jobs: ${searchText(filters)}`;
    if (titleCount != null) name += ` (${titleCount.toLocaleString()})`;
    if (where.kind === "job") name = `Job ${where.id} · ${name}`;
  }
  document.title = `${name} · jobqueue`;
}

// The count the title gives for a jobs view: the jobs of its status, or all of them, as the chips count.
function viewCount(c) {
  const filters = readAddress(viewAddress || "#/").filters || {};
  const others = Object.keys(filters).filter((k) => k !== "status" && k !== "batch");
  if (others.length || !c) return null;  // the counts are of the whole queue (or batch): not this search's
  return filters.status ? c[filters.status] || 0 : Object.values(c).reduce((a, b) => a + (b || 0), 0);
}

let lastHash = null;  // the address route() read before this one
function route() {
  const where = readAddress(location.hash);
  const before = lastHash;
  lastHash = location.hash || "#/";
  if (where.kind === "anchor") {  // a place in the page (#stats): the view stays, and so does its address
    if (viewAddress) history.replaceState(null, "", viewAddress);
    else showJobs(readAddress("#/"));
    lastHash = viewAddress;
    return;
  }
  if (where.kind === "job") {
    if (!viewAddress) showJobs(readAddress("#/"));
    // opened from the view beneath (a row's link): closing it steps back to that view
    openedOver = before && before === viewAddress ? viewAddress : null;
    document.getElementById("jobs-card").hidden = false;
    for (const view of Object.values(PAGES)) view.close();
    markView(where);
    openJob(where.id, where.tab);  // over the jobs view beneath
    return;
  }
  openedOver = null;
  const detail = document.getElementById("detail");
  if (detail.open) detail.close();
  const other = where.kind === "page" ? PAGES[where.name] : null;
  document.getElementById("jobs-card").hidden = Boolean(other);
  for (const view of Object.values(PAGES)) if (view !== other) view.close();
  if (other) {
    batchView.close();
    other.open(where);  // the page's own part of the address: a crawl's id, a search, a page of the list
    markView(where);
    return;
  }
  if (viewAddress !== addressOf(where.filters, where.pageNo)) titleCount = null;
  showJobs(where);
  markView(where);
}

async function refresh() {
  counts(await table.reload({ gentle: true }));  // rows the reader is working with stay where they are
}

const link = new LiveLink(document.getElementById("link"), {
  onHello: refresh,              // subscribed first, then read the list: no event falls in between
  onTask: (task) => { table.apply(task); noticeTask(task); },
  onCounts: counts,
  onResync: refresh,
  onBatch: (batch) => batchView.apply(batch),
  onCrawl: (crawl) => { crawlView.apply(crawl); crawls.apply(crawl); },
  onStats: (stats) => statsPanel.apply(stats),
  onDeleted: (id) => table.remove(id),
  onState: (state) => {
    // Server down: say so above everything, mark what is shown as possibly stale, hold the actions.
    const down = state === "down";
    document.getElementById("down-banner").hidden = !down;
    document.body.classList.toggle("offline", down);
    for (const b of document.querySelectorAll("main button")) {
      if (down && !b.disabled) { b.disabled = true; b.dataset.heldByOutage = "1"; }
      if (!down && b.dataset.heldByOutage) { b.disabled = false; delete b.dataset.heldByOutage; }
    }
    if (!down && state === "live") refresh();
  },
});
const statsPanel = new StatsPanel(document.getElementById("stats"));

wireSubmitForm(document.getElementById("submit-form"), (tasks) => { for (const task of tasks) table.apply(task); });

// The filters of the jobs view shown, as its address says.
function viewFilters() {
  const where = readAddress(location.hash);
  return (where.kind === "jobs" ? where : readAddress(viewAddress || "#/")).filters || {};
}

function go(address) {
  if (location.hash === address) route(); else location.hash = address;  // the same address reads afresh
}

document.getElementById("filters").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-status]");
  if (!button) return;
  const { status, ...rest } = viewFilters();
  go(addressOf(button.dataset.status ? { ...rest, status: button.dataset.status } : rest));
});

document.getElementById("detail-close").addEventListener("click", () => document.getElementById("detail").close());
document.getElementById("detail").addEventListener("close", () => {
  // a job opened by its address: closing it goes back to the view beneath, not to the job again on reload.
  // Only that job's address: the close event comes late, maybe after the address moved on to another job.
  const where = readAddress(location.hash);
  if (where.kind !== "job" || where.id !== jobShown) return;
  if (openedOver && openedOver === viewAddress) {
    openedOver = null;
    history.back();  // the step that opened it is undone: Back does not open it again
  } else {
    history.replaceState(null, "", viewAddress || "#/");
    lastHash = viewAddress || "#/";
    markView(readAddress(lastHash));
  }
});
document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  go(addressOf(parseSearch(document.getElementById("search-text").value)));
});
// Paging writes the page into the address, so back/forward and a shared link find it again.
table.onPage = (pageNo) => go(addressOf(viewFilters(), pageNo));
// A link to a place in the page moves there without changing the address, which keeps saying the view.
document.addEventListener("click", (event) => {
  const link = event.target.closest?.('a[href^="#"]:not([href^="#/"])');
  const place = link && document.getElementById(link.getAttribute("href").slice(1));
  if (!place || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  place.scrollIntoView();
  place.focus({ preventScroll: true });
});
table.onError = (message) => {
  const box = document.getElementById("search-error");
  box.textContent = message || "";
  box.hidden = !message;
};
window.addEventListener("hashchange", route);
labelTables();  // at phone width tables are cards, each cell under its column's name
route();

setInterval(() => spark.tick(), 1000);
setInterval(() => table.schedule(), 5000);  // ages move on
// A REST call first: if the server needs a token, this is where the page asks for it (a browser
// cannot see why a websocket was refused), so the live link starts with the token in hand.
const forget = document.getElementById("forget-token");
forget.addEventListener("click", () => { forgetToken(); location.reload(); });
// That first answer also says whether the token may change anything: the bulk actions follow it.
api("GET", "/queue_tasks?limit=1").then(() => {
  forget.hidden = !token();
  // a read-only token looks read-only: no form, no action, and the header says so
  const readOnly = !canChange();
  document.body.classList.toggle("read-only", readOnly);
  document.getElementById("read-only").hidden = !readOnly;
  document.getElementById("submit-card").hidden = readOnly;
  bulk = new BulkActions(document.getElementById("bulk"), { table, viewFilters, done: refresh });
  bulk.render();
  link.start();
});

// The submit form is folded to its first line on the lists, so the table has the room; it opens when
// the reader goes into it or asks.
const submitForm = document.getElementById("submit-form");
const submitToggle = document.getElementById("submit-toggle");
function unfold(open) {
  submitForm.classList.toggle("collapsed", !open);
  submitToggle.setAttribute("aria-expanded", String(open));
}
submitToggle.addEventListener("click", () => unfold(submitForm.classList.contains("collapsed")));
submitForm.addEventListener("focusin", () => unfold(true));
