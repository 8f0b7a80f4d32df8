// A line above the table for two views: failed jobs counted by error code, running jobs by host (with
// the longest-running one). Read from up to 1,000 jobs of the current filter, and said so. Each item is a
// link to the view narrowed to it (the error code, the host).

import { addressOf } from "./address.js";
import { api } from "./api.js";
import { age, el } from "./format.js";

const LIMIT = 1000;

function tally(tasks, key) {
  const counts = new Map();
  for (const task of tasks) counts.set(key(task), (counts.get(key(task)) || 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]);
}

export async function groupSummary(box, filters) {
  const status = filters.status;
  if (status !== "failed" && status !== "running") { box.hidden = true; return; }
  const { status: code, body } = await api("GET", `/queue_tasks?${new URLSearchParams({ ...filters, limit: String(LIMIT) })}`);
  if (code !== 200) { box.hidden = true; return; }
  const tasks = body.tasks;
  const scope = body.next ? `the newest ${LIMIT.toLocaleString()}` : `all ${tasks.length.toLocaleString()}`;
  const items = [];
  if (status === "failed") {
    for (const [code, n] of tally(tasks, (t) => t.error?.code || "unknown")) {
      items.push(link(code === "unknown" ? null : addressOf({ ...filters, error: code }), `${code} ${n.toLocaleString()}`,
        `the ${n.toLocaleString()} failed with ${code}`));
    }
  } else {
    const now = Date.now();
    const oldest = new Map();
    for (const t of tasks) {
      const host = hostOf(t.url);
      if (t.started_at && (!oldest.get(host) || t.started_at < oldest.get(host))) oldest.set(host, t.started_at);
    }
    for (const [host, n] of tally(tasks, (t) => hostOf(t.url))) {
      const text = `${host} ${n.toLocaleString()}${oldest.get(host) ? ` (longest ${age(oldest.get(host), now)})` : ""}`;
      items.push(link(addressOf({ ...filters, host: host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "") }), text,
        `the ${n.toLocaleString()} running on ${host}`));
    }
  }
  const label = status === "failed" ? "By error code" : "By host";
  box.replaceChildren(`${label} (${scope}): `);
  items.forEach((item, i) => box.append(...(i ? [" · ", item] : [item])));
  box.hidden = tasks.length === 0;
}

// An item of the line: a link to the narrower view, or the text alone when there is none.
function link(address, text, title) {
  return address ? el("a", { href: address, title, text }) : el("span", { text });
}

function hostOf(url) {
  try { return new URL(url).host; } catch { return url; }
}
