// The address says what the page shows, and nothing else does: the jobs view's filters (status and batch
// among them) and page, an open job, or another page. Every part of the jobs view (the list, the search
// box, the status chips, the bulk actions) is derived from what `readAddress` returns.
//
//   #/  or nothing                 every job
//   #/jobs?status=failed&tag=x     a search (page=N for a later page)
//   #/batch/ID?status=failed       one batch's jobs, searched the same way
//   #/job/ID, #/job/ID/history     a job, opened over the jobs view beneath
//   #/batches, #/deliveries        the other pages
//   #/crawls?cursor=C, #/crawl/ID  crawls (a page of them), one crawl
//   #/hosts?q=exa&edit=HOST        hosts (a search, the host whose policy form is open)
//   #stats (no slash)              a place in the page, not a view

export const FILTER_KEYS = ["status", "batch", "crawl", "tag", "host", "http_status", "error", "url", "q", "since", "until"];
const PAGES = ["#/batches", "#/deliveries", "#/crawls", "#/hosts"];
const JOB = /^#\/job\/([^/?]+)(?:\/(history))?$/;
const BATCH = /^#\/batch\/([^/?]+)$/;
const CRAWL = /^#\/crawl\/([^/?]+)$/;

function decoded(raw) {
  try { return decodeURIComponent(raw); } catch { return null; }
}

// {kind: "jobs", filters, pageNo} | {kind: "job", id, tab} | {kind: "page", name, params, id} | {kind: "anchor"}
export function readAddress(hash) {
  const [path, query = ""] = (hash || "#/").split("?");
  if (PAGES.includes(path)) return { kind: "page", name: path, params: new URLSearchParams(query) };
  const crawl = CRAWL.exec(path);
  if (crawl && decoded(crawl[1])) return { kind: "page", name: "#/crawl", id: decoded(crawl[1]), params: new URLSearchParams() };
  const job = JOB.exec(path);
  if (job && decoded(job[1])) return { kind: "job", id: decoded(job[1]), tab: job[2] || null };
  const batch = BATCH.exec(path);
  if (path !== "#/" && path !== "#/jobs" && !(batch && decoded(batch[1]))) {
    return { kind: path.startsWith("#/") ? "jobs" : "anchor", filters: {}, pageNo: 1 };  // an unknown view: all jobs
  }
  const params = new URLSearchParams(query);
  const filters = batch ? { batch: decoded(batch[1]) } : {};  // in the order written, as the search box shows it
  for (const [key, value] of params) if (FILTER_KEYS.includes(key) && value && !(key in filters)) filters[key] = value;
  const pageNo = Math.max(1, Math.floor(Number(params.get("page"))) || 1);
  return { kind: "jobs", filters, pageNo };
}

// The one address of a jobs view: a batch's jobs under #/batch/ID, any other search under #/jobs, all under #/.
export function addressOf(filters, pageNo = 1) {
  const { batch, ...rest } = filters;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(rest)) if (FILTER_KEYS.includes(key) && value) query.set(key, value);
  if (pageNo > 1) query.set("page", String(pageNo));
  const tail = query.toString() ? `?${query}` : "";
  if (batch) return `#/batch/${encodeURIComponent(batch)}${tail}`;
  return tail ? `#/jobs${tail}` : "#/";
}

export function sameFilters(a, b) {
  return FILTER_KEYS.every((key) => (a[key] || "") === (b[key] || ""));
}

// The address of a page with its parameters (empty ones left out): pageAddress("#/hosts", {q: "exa"}).
export function pageAddress(name, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
  return query.toString() ? `${name}?${query}` : name;
}
