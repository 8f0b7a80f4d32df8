// The actions on every job the view lists (retry the failed, cancel the queued, delete the finished). Each
// acts on the view's filter plus the status its label names, and nothing more: before asking, it sends the
// very request it will send as a dry run, so the confirmation gives the server's count for that filter,
// and the result gives the count the server actually changed.

import { api, canChange } from "./api.js";
import { confirmAction } from "./batch.js";
import { count, el } from "./format.js";
import { searchText } from "./search.js";

const ACTIONS = [
  { action: "retry", states: ["failed"], names: "failed", label: "Retry failed", verb: "Retry", yes: "Retry them" },
  { action: "cancel", states: ["queued"], names: "queued", label: "Cancel queued", verb: "Cancel", yes: "Cancel them" },
  // the server deletes only finished jobs: the view's filter alone names exactly those
  { action: "delete", states: ["completed", "failed", "cancelled"], names: "finished", label: "Delete finished",
    verb: "Delete", yes: "Delete them" },
];

// The filter an action sends for a view, or null when the view's status rules out the label's.
export function actionFilter(spec, view) {
  if (view.status) return spec.states.includes(view.status) ? { ...view } : null;
  const filter = spec.states.length === 1 ? { ...view, status: spec.states[0] } : { ...view };
  return Object.keys(filter).length ? filter : { all: true };
}

const jobs = (n, names) => `${count(n)} ${names} job${n === 1 ? "" : "s"}`;
const failure = ({ status, body }) => body?.error?.message || `the server answered ${status}`;

async function run(spec, view, say, done) {
  const scope = Object.keys(view).length ? `matching "${searchText(view)}"` : "in the whole queue";
  const none = Object.keys(view).length ? `No ${spec.names} job matches "${searchText(view)}"`
    : `No ${spec.names} job in the queue`;
  const filter = actionFilter(spec, view);
  if (!filter) { say(`${none}: nothing to ${spec.action}.`); return; }
  const dry = await api("POST", "/queue_tasks/bulk", { action: spec.action, filter, dry_run: true });
  if (dry.status !== 200) { say(failure(dry)); return; }
  const asked = dry.body.matched;
  if (asked === 0) { say(`${none}: nothing to ${spec.action}.`); return; }
  if (!await confirmAction(`${spec.verb} ${jobs(asked, spec.names)} ${scope}?`, spec.yes)) return;
  const answer = await api("POST", "/queue_tasks/bulk", { action: spec.action, filter });
  if (answer.status !== 200) { say(failure(answer)); done(); return; }
  const { matched, changed } = answer.body;
  const since = matched === asked ? "" : ` (${count(asked)} when you confirmed)`;
  say(`${spec.verb}: ${count(changed)} of ${count(matched)} matching jobs changed${since}.`);
  done();
}

// The buttons, hidden for a read-only token; `viewFilters()` reads the view's filters from the address.
export function bulkButtons(container, viewFilters, say, done) {
  container.replaceChildren();
  if (!canChange()) return;
  for (const spec of ACTIONS) {
    const button = el("button", { type: "button", text: `${spec.label}…` });
    button.addEventListener("click", async () => {
      if (button.dataset.working) return;  // a second press while the first still counts
      button.dataset.working = "1";
      say("");
      try { await run(spec, viewFilters(), say, done); } finally { delete button.dataset.working; }
    });
    container.append(button);
  }
}
