// The dashboard: wires the submit form, the live link, the jobs table, the batch view and the job view
// together; the URL hash says what is open (#/batch/ID, #/job/ID), so a reload keeps it.

import { api, forgetToken, token } from "./api.js";
import { BatchView } from "./batch.js";
import { BatchesView } from "./batches.js";
import { DeliveriesView } from "./deliveries.js";
import { noticeTask, openDetail } from "./detail.js";
import { JobsTable, showCounts } from "./jobs.js";
import { LiveLink } from "./live.js";
import { bulkButtons, filtersFromHash, hashOf, parseSearch, searchText } from "./search.js";
import { groupSummary } from "./groups.js";
import { Sparkline } from "./spark.js";
import { StatsPanel } from "./stats.js";
import { wireSubmitForm } from "./submit.js";

const openJob = (id, tab) => openDetail(id, { onChange: (t) => table.apply(t), tab });
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

const ROUTE = /^#\/(batch|job)\/([^/]+)(?:\/(history))?$/;
const deliveries = new DeliveriesView(document.getElementById("deliveries"));

const batches = new BatchesView(document.getElementById("batches"));
const PAGES = { "#/deliveries": deliveries, "#/batches": batches };

function route() {
  const other = PAGES[location.hash];
  document.getElementById("jobs-card").hidden = Boolean(other);
  for (const view of Object.values(PAGES)) if (view !== other) view.close();
  if (other) {
    batchView.close();
    other.open();
    return;
  }
  const searched = filtersFromHash(location.hash);
  if (searched) {
    document.getElementById("search-text").value = searchText(searched);
    if (table.batch) { table.batch = null; batchView.close(); }
    pressFilter(searched.status || "");
    const wanted = Number(new URLSearchParams(location.hash.split("?")[1] || "").get("page")) || 1;
    table.find(searched).then(async (c) => {
      counts(c);
      for (let page = 1; page < wanted && table.next; page++) await table.page(+1);  // a shared link's page
      groupSummary(document.getElementById("groups"), searched);
    });
    return;
  }
  document.getElementById("groups").hidden = true;
  const [, kind, raw, tab] = ROUTE.exec(location.hash) || [];
  let id;
  try { id = raw && decodeURIComponent(raw); } catch { id = null; }
  if (kind === "job" && id) {
    openJob(id, tab);  // over whatever view is open
    return;
  }
  const batch = kind === "batch" && id ? id : null;
  if (batch === table.batch) return;
  document.getElementById("jobs-title").textContent = batch ? "Jobs in this batch" : "Jobs";
  pressFilter("");
  if (batch) batchView.open(batch);
  else batchView.close();
  table.showBatch(batch).then(counts);
}

async function refresh() {
  counts(await table.reload());
}

const link = new LiveLink(document.getElementById("link"), {
  onHello: refresh,              // subscribed first, then read the list: no event falls in between
  onTask: (task) => { table.apply(task); noticeTask(task); },
  onCounts: counts,
  onResync: refresh,
  onBatch: (batch) => batchView.apply(batch),
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

document.getElementById("filters").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-status]");
  if (!button) return;
  pressFilter(button.dataset.status);
  counts(await table.filter(button.dataset.status));
});

document.getElementById("detail-close").addEventListener("click", () => document.getElementById("detail").close());
document.getElementById("detail").addEventListener("close", () => {
  // a job opened by its address: closing it goes back to the view beneath, not to the job again on reload
  if (location.hash.startsWith("#/job/")) {
    history.replaceState(null, "", table.batch ? `#/batch/${encodeURIComponent(table.batch)}` : location.pathname);
  }
});
document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const filters = parseSearch(document.getElementById("search-text").value);
  const target = hashOf(filters);
  if (location.hash === target) route(); else location.hash = target;  // the address keeps the search
});
// Paging a search writes the page into the address, so back/forward and a shared link find it again.
table.onPaged = (pageNo) => {
  const filters = filtersFromHash(location.hash);
  if (filters) {
    const query = new URLSearchParams({ ...filters, ...(pageNo > 1 ? { page: String(pageNo) } : {}) });
    history.pushState(null, "", `#/jobs?${query}`);
  }
};
table.onError = (message) => {
  const box = document.getElementById("search-error");
  box.textContent = message || "";
  box.hidden = !message;
};
const say = (text) => { document.getElementById("bulk-status").textContent = text; };
const matching = () => ({ ...table.search, ...(table.status ? { status: table.status } : {}),
  ...(table.batch ? { batch: table.batch } : {}) });
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
  bulkButtons(document.getElementById("bulk"), matching, say, refresh);
  link.start();
});
