// The dashboard: wires the submit form, the live link, the jobs table, the batch view, the job view and the
// other pages (batches, crawls, one crawl, hosts, webhook deliveries) together. The address alone says what is shown (address.js): every change of it goes through route(),
// which sets the list, the search box, the status chips and the batch view from it; the controls only
// write the address.

import { addressOf, readAddress } from "./address.js";
import { api, forgetToken, token } from "./api.js";
import { BatchView } from "./batch.js";
import { BatchesView } from "./batches.js";
import { CrawlView } from "./crawl.js";
import { CrawlsView } from "./crawls.js";
import { DeliveriesView } from "./deliveries.js";
import { noticeTask, openDetail } from "./detail.js";
import { JobsTable, showCounts } from "./jobs.js";
import { LiveLink } from "./live.js";
import { bulkButtons } from "./bulk.js";
import { parseSearch, searchText } from "./search.js";
import { groupSummary } from "./groups.js";
import { HostsView } from "./hosts.js";
import { Sparkline } from "./spark.js";
import { StatsPanel } from "./stats.js";
import { wireSubmitForm } from "./submit.js";

let jobShown = null;  // the job the dialog was opened for
const openJob = (id, tab) => {
  jobShown = id;
  return openDetail(id, { onChange: (t) => table.apply(t), tab });
};
const table = new JobsTable(document.getElementById("jobs"), {
  onOpen: openJob,
  onView: (view) => link.sendView(view),
});
const spark = new Sparkline(document.getElementById("spark"), document.getElementById("rate"));
// While a batch is open the status filters count its jobs; the sparkline always follows the whole queue.
const batchView = new BatchView(document.getElementById("batch"), { onCounts: showCounts });

function counts(c) {
  if (!c) return;
  table.seeTotal(c);
  if (!batchView.id) showCounts(c);
  spark.observe(c);
}

function pressFilter(status) {
  for (const b of document.querySelectorAll("#filters button")) b.setAttribute("aria-pressed", String(b.dataset.status === status));
}

const deliveries = new DeliveriesView(document.getElementById("deliveries"));
const batches = new BatchesView(document.getElementById("batches"));
const crawls = new CrawlsView(document.getElementById("crawls"), { go: (address) => go(address) });
const crawlView = new CrawlView(document.getElementById("crawl"));
const hosts = new HostsView(document.getElementById("hosts"), { go: (address) => go(address) });
const PAGES = { "#/deliveries": deliveries, "#/batches": batches, "#/crawls": crawls, "#/crawl": crawlView,
  "#/hosts": hosts };
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
  table.show(filters, pageNo).then((c) => {
    counts(c);
    if (viewAddress === addressOf(filters, pageNo)) groupSummary(groups, filters);
  });
}

function route() {
  const where = readAddress(location.hash);
  if (where.kind === "anchor") {  // a place in the page (#stats): the view stays, and so does its address
    if (viewAddress) history.replaceState(null, "", viewAddress);
    else showJobs(readAddress("#/"));
    return;
  }
  if (where.kind === "job") {
    if (!viewAddress) showJobs(readAddress("#/"));
    openJob(where.id, where.tab);  // over the jobs view beneath
    return;
  }
  const detail = document.getElementById("detail");
  if (detail.open) detail.close();
  const other = where.kind === "page" ? PAGES[where.name] : null;
  document.getElementById("jobs-card").hidden = Boolean(other);
  for (const view of Object.values(PAGES)) if (view !== other) view.close();
  if (other) {
    batchView.close();
    other.open(where);  // the page's own part of the address: a crawl's id, a search, a page of the list
    return;
  }
  showJobs(where);
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
  if (where.kind === "job" && where.id === jobShown) history.replaceState(null, "", viewAddress || "#/");
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
const say = (text) => { document.getElementById("bulk-status").textContent = text; };
window.addEventListener("hashchange", route);
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
  bulkButtons(document.getElementById("bulk"), viewFilters, say, refresh);
  link.start();
});
