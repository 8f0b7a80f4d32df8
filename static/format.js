// Small formatting helpers for the dashboard's cells.

export function age(iso, now = Date.now()) {
  if (!iso) return "";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function took(task, now = Date.now()) {
  if (task.status === "running" && task.started_at) return `running ${age(task.started_at, now)}`;
  if (!task.started_at || !task.finished_at) return "";
  const ms = Date.parse(task.finished_at) - Date.parse(task.started_at);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function bytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// "5/3/2025, 14:02:07 (12:02:07 UTC)": a time in the reader's zone, and in UTC, for a title to hover.
export function localTime(iso) {
  if (!iso) return null;
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  return `${at.toLocaleString()} (${at.toISOString().replace("T", " ").replace(/\.\d+Z$/, "")} UTC)`;
}

// A time as an element: in the reader's zone, UTC on hover; null for no time.
export function timeEl(iso) {
  if (!iso) return null;
  return el("time", { datetime: iso, title: `${new Date(iso).toISOString()} (UTC)`, text: new Date(iso).toLocaleString() });
}

// A job's tags as chips, its priority (only when not 0), a recurring job's mark and, for a crawl's page, its
// depth; null when it has none of them.
export function jobMarks(task) {
  const tags = task.tags || [];
  if (tags.length === 0 && !task.priority && !task.crawl_id && !task.schedule_id) return null;
  const marks = el("span", { class: "marks" });
  if (task.schedule_id) {
    marks.append(el("span", { class: "tag recurring", title: `a run of recurring fetch ${task.schedule_id}`,
      text: "recurring" }));
  }
  if (task.crawl_id) {
    marks.append(el("span", { class: "tag crawl", title: `a page of crawl ${task.crawl_id}`,
      text: `crawl depth ${task.depth ?? 0}` }));
  }
  if (task.priority) {
    marks.append(el("span", { class: `prio ${task.priority > 0 ? "up" : "down"}`, text: `priority ${task.priority}` }));
  }
  for (const tag of tags) marks.append(el("span", { class: "tag", text: tag }));
  return marks;
}

// A count as people read it in their locale (1,234); missing counts are 0.
export function count(n) {
  return (n || 0).toLocaleString();
}
