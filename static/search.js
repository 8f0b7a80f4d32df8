// The search bar over the job filters (`status:failed host:example.com 4xx tag:x "two words"`), kept in
// the address (#/jobs?status=failed&host=...) so reload, back/forward and shared links work, and the
// actions on everything a search matches (retry the failed, cancel the queued, delete the finished).

import { api, canChange } from "./api.js";
import { confirmAction } from "./batch.js";
import { el } from "./format.js";

const KEYS = ["status", "batch", "tag", "host", "http_status", "error", "url", "q", "since", "until"];
const ALIASES = { http: "http_status", code: "http_status" };

// "status:failed 4xx "price list" cheap" -> {status: "failed", http_status: "4xx", q: "price list cheap"}
export function parseSearch(text) {
  const filters = {};
  const words = [];
  for (const match of text.matchAll(/(\w+):("[^"]*"|\S+)|"([^"]*)"|(\S+)/g)) {
    const [, key, value, quoted, bare] = match;
    const name = key && (ALIASES[key] || key);
    if (name && KEYS.includes(name)) filters[name] = value.replace(/^"|"$/g, "");
    else if (bare && /^[1-5]([0-9]{2}|xx)$/i.test(bare)) filters.http_status = bare.toLowerCase();
    else words.push(quoted ?? bare ?? match[0]);
  }
  if (words.length) filters.q = words.join(" ");
  return filters;
}

export function searchText(filters) {
  const parts = [];
  for (const [key, value] of Object.entries(filters)) {
    if (key === "q") continue;
    parts.push(`${key}:${/\s/.test(value) ? `"${value}"` : value}`);
  }
  if (filters.q) parts.push(filters.q);
  return parts.join(" ");
}

export function filtersFromHash(hash) {
  const [path, query = ""] = hash.split("?");
  if (path !== "#/jobs") return null;
  const filters = {};
  for (const [key, value] of new URLSearchParams(query)) if (KEYS.includes(key) && value) filters[key] = value;
  return filters;
}

export function hashOf(filters) {
  const query = new URLSearchParams(filters).toString();
  return query ? `#/jobs?${query}` : "#/";
}

// How many jobs a filter matches in one state, counted a page at a time up to `cap`.
async function countMatching(filters, status, cap = 5000) {
  let n = 0;
  let cursor = "";
  do {
    const query = new URLSearchParams({ ...filters, status, limit: "1000" });
    if (cursor) query.set("cursor", cursor);
    const { status: code, body } = await api("GET", `/queue_tasks?${query}`);
    if (code !== 200) return null;
    n += body.tasks.length;
    cursor = body.next;
  } while (cursor && n < cap);
  return cursor ? `more than ${cap.toLocaleString()}` : n.toLocaleString();
}

const ACTIONS = [
  { action: "retry", states: ["failed"], label: "Retry failed", verb: "Retry", yes: "Retry them" },
  { action: "cancel", states: ["queued"], label: "Cancel queued", verb: "Cancel", yes: "Cancel them" },
  { action: "delete", states: ["completed", "failed", "cancelled"], label: "Delete finished", verb: "Delete",
    yes: "Delete them" },
];

// The buttons acting on everything the current search matches; hidden for a read-only token.
export function bulkButtons(container, getFilters, say, done) {
  container.replaceChildren();
  if (!canChange()) return;
  for (const spec of ACTIONS) {
    const button = el("button", { type: "button", text: `${spec.label}…` });
    button.addEventListener("click", async () => {
      const filters = getFilters();
      const counted = [];
      for (const state of spec.states) {
        if (filters.status && filters.status !== state) continue;
        counted.push(`${await countMatching(filters, state)} ${state}`);
      }
      const what = Object.keys(filters).length ? `matching "${searchText(filters)}"` : "in the whole queue";
      const sure = await confirmAction(`${spec.verb} ${counted.join(", ")} job(s) ${what}?`, spec.yes);
      if (!sure) return;
      const filter = Object.keys(filters).length ? filters : { all: true };
      const { status, body } = await api("POST", "/queue_tasks/bulk", { action: spec.action, filter });
      say(status === 200 ? `${spec.verb}: ${body.changed.toLocaleString()} of ${body.matched.toLocaleString()} matching jobs changed.`
        : body?.error?.message || `the server answered ${status}`);
      done();
    });
    container.append(button);
  }
}
