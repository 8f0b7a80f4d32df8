// A line above the table for two views: failed jobs counted by error code, running jobs by host (with
// the longest-running one). Read from up to 1,000 jobs of the current filter, and said so.

import { api } from "./api.js";
import { age } from "./format.js";

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
  if (status === "failed") {
    const groups = tally(tasks, (t) => t.error?.code || "unknown");
    box.textContent = `By error code (${scope}): ` + groups.map(([k, n]) => `${k} ${n.toLocaleString()}`).join(" · ");
  } else {
    const now = Date.now();
    const oldest = new Map();
    for (const t of tasks) {
      const host = hostOf(t.url);
      if (t.started_at && (!oldest.get(host) || t.started_at < oldest.get(host))) oldest.set(host, t.started_at);
    }
    const groups = tally(tasks, (t) => hostOf(t.url));
    box.textContent = `By host (${scope}): ` + groups.map(([host, n]) =>
      `${host} ${n.toLocaleString()}${oldest.get(host) ? ` (longest ${age(oldest.get(host), now)})` : ""}`).join(" · ");
  }
  box.hidden = tasks.length === 0;
}

function hostOf(url) {
  try { return new URL(url).host; } catch { return url; }
}
