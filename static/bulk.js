// The actions on many jobs: on every job the view lists (retry the failed, cancel the queued, delete the
// finished), or on the rows selected. A filter action acts on the view's filter plus the status its label
// names, and nothing more: before asking, it sends the very request it will send as a dry run, so the
// confirmation gives the server's count for that filter, and the result gives the count the server changed.
// A selection acts on exactly the jobs checked, one request each. Cancel and retry of a selection (or of one
// row) can be undone for 10 s; a filter action cannot (the server does not say which jobs it changed), and
// the confirmation says so.

import { api, canChange } from "./api.js";
import { confirmAction } from "./batch.js";
import { count, el } from "./format.js";
import { searchText } from "./search.js";

const UNDO_MS = 10000;
const FINISHED = ["completed", "failed", "cancelled"];
const ACTIONS = [
  { action: "retry", states: ["failed"], names: "failed", label: "Retry failed", verb: "Retry", yes: "Retry them",
    picks: FINISHED, danger: false },
  { action: "cancel", states: ["queued"], names: "queued", label: "Cancel queued", verb: "Cancel", yes: "Cancel them",
    picks: ["queued", "running"], danger: true },
  // the server deletes only finished jobs: the view's filter alone names exactly those
  { action: "delete", states: FINISHED, names: "finished", label: "Delete finished", verb: "Delete", yes: "Delete them",
    picks: FINISHED, danger: true },
];

// The filter an action sends for a view, or null when the view's status rules out the label's.
export function actionFilter(spec, view) {
  if (view.status) return spec.states.includes(view.status) ? { ...view } : null;
  const filter = spec.states.length === 1 ? { ...view, status: spec.states[0] } : { ...view };
  return Object.keys(filter).length ? filter : { all: true };
}

const jobs = (n, names) => `${count(n)} ${names}${names ? " " : ""}job${n === 1 ? "" : "s"}`;
const failure = ({ status, body }) => body?.error?.message || `the server answered ${status}`;

// One request per job: what each action sends for one id, and what undoes it.
const ONE = {
  retry: (id) => ["POST", `/queue_tasks/${encodeURIComponent(id)}/retry`],
  cancel: (id) => ["DELETE", `/queue_tasks/${encodeURIComponent(id)}`],
  delete: (id) => ["DELETE", `/queue_tasks/${encodeURIComponent(id)}?purge=true`],
};
const UNDO = { retry: "cancel", cancel: "retry" };

// Send `action` for each id, four at a time; returns the ids the server changed.
async function eachId(action, ids) {
  const changed = [];
  const queue = [...ids];
  const worker = async () => {
    while (queue.length) {
      const id = queue.shift();
      const { status } = await api(...ONE[action](id));
      if (status === 200) changed.push(id);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return changed;
}

export class BulkActions {
  // `table` gives the selection; `viewFilters()` the view's filters from the address; `done()` re-reads the list.
  constructor(container, { table, viewFilters, done }) {
    this.container = container;
    this.table = table;
    this.viewFilters = viewFilters;
    this.done = done;
    this.statusLine = document.getElementById("bulk-status");
    this.undoButton = document.getElementById("undo");
    this.undoTimer = null;
    this.undoing = null;
    this.undoButton.addEventListener("click", () => this.undo());
    this.busy = false;
  }

  say(text) {
    this.statusLine.textContent = text;
  }

  // The buttons for what is selected: the selected rows, or (none selected, or all matching) the view's filter.
  render() {
    const focused = this.container.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    this.container.replaceChildren();
    if (!canChange()) return;
    const picked = this.table.selection();
    const filterMode = picked === null || picked.length === 0;
    this.container.setAttribute("aria-label", picked === null ? "act on every matching job (all selected)"
      : filterMode ? "act on every matching job" : "act on the selected jobs");
    if (picked === null) {
      this.container.append(el("span", { class: "selected-note", text: "Every job matching this view is selected." }));
    }
    for (const spec of ACTIONS) {
      const text = filterMode ? `${spec.label}…` : `${spec.verb} selected (${count(picked.length)})…`;
      const button = el("button", { type: "button", text, class: spec.danger ? "danger" : null });
      button.dataset.key = spec.action;
      button.addEventListener("click", () => this.press(spec));
      this.container.append(button);
    }
    if (!filterMode || picked === null) {
      if (picked !== null) {
        const all = el("button", { type: "button", class: "plain", text: "Select every matching job" });
        all.dataset.key = "all";
        all.addEventListener("click", () => this.table.selectAllMatching());
        this.container.append(all);
      }
      const clear = el("button", { type: "button", class: "plain", text: "Clear selection" });
      clear.dataset.key = "clear";
      clear.addEventListener("click", () => this.table.clearSelection());
      this.container.append(clear);
    }
    const again = focused && this.container.querySelector(`[data-key="${focused}"]`);
    (again || (focused && this.container.querySelector("button")))?.focus();  // the selection changed under it
  }

  async press(spec) {
    if (this.busy) return;  // a second press while the first still counts
    this.busy = true;
    this.say("");
    try {
      const picked = this.table.selection();
      if (picked && picked.length) await this.onSelection(spec, this.table.tasksSelected());
      else await this.onFilter(spec, this.viewFilters());
    } finally { this.busy = false; }
  }

  async onFilter(spec, view) {
    const scope = Object.keys(view).length ? `matching "${searchText(view)}"` : "in the whole queue";
    const none = Object.keys(view).length ? `No ${spec.names} job matches "${searchText(view)}"`
      : `No ${spec.names} job in the queue`;
    const filter = actionFilter(spec, view);
    if (!filter) { this.say(`${none}: nothing to ${spec.action}.`); return; }
    const dry = await api("POST", "/queue_tasks/bulk", { action: spec.action, filter, dry_run: true });
    if (dry.status !== 200) { this.say(failure(dry)); return; }
    const asked = dry.body.matched;
    if (asked === 0) { this.say(`${none}: nothing to ${spec.action}.`); return; }
    const note = spec.action === "delete" ? "This cannot be undone."
      : "This cannot be undone from here: the server does not say which jobs a filter changed.";
    if (!await confirmAction(`${spec.verb} ${jobs(asked, spec.names)} ${scope}?`, spec.yes, "Keep them",
      { danger: spec.danger, note })) return;
    const answer = await api("POST", "/queue_tasks/bulk", { action: spec.action, filter });
    if (answer.status !== 200) { this.say(failure(answer)); this.done(); return; }
    const { matched, changed } = answer.body;
    const since = matched === asked ? "" : ` (${count(asked)} when you confirmed)`;
    this.table.clearSelection();
    this.say(`${spec.verb}: ${count(changed)} of ${count(matched)} matching jobs changed${since}.`);
    this.done();
  }

  async onSelection(spec, tasks) {
    const ids = tasks.filter((t) => spec.picks.includes(t.status)).map((t) => t.id);
    const skipped = tasks.length - ids.length;
    const which = spec.action === "cancel" ? "unfinished" : "finished";
    if (ids.length === 0) {
      this.say(`None of the ${jobs(tasks.length, "selected")} is ${which}: nothing to ${spec.action}.`);
      return;
    }
    const others = skipped ? ` (${count(skipped)} of the selected ${skipped === 1 ? "is" : "are"} not ${which}: left as ${skipped === 1 ? "it is" : "they are"})` : "";
    const note = spec.action === "delete" ? "This cannot be undone." : "You can undo it for 10 seconds.";
    if (!await confirmAction(`${spec.verb} ${jobs(ids.length, "selected")}${others}?`, spec.yes, "Keep them",
      { danger: spec.danger, note })) return;
    const changed = await eachId(spec.action, ids);
    this.table.clearSelection();
    const text = `${spec.verb}: ${count(changed.length)} of ${jobs(ids.length, "selected")} changed.`;
    if (UNDO[spec.action] && changed.length) this.offerUndo(text, spec.action, changed);
    else this.say(text);
    this.done();
  }

  // A row's own Cancel or Retry: the same undo as a selection's.
  acted(action, task) {
    const verb = action === "cancel" ? "Cancelled" : "Queued again";
    this.offerUndo(`${verb}: ${task.url}.`, action, [task.id]);
  }

  // Say what happened, with an Undo button for 10 s that sends the opposite action to the same jobs.
  offerUndo(text, action, ids) {
    clearTimeout(this.undoTimer);
    this.undoing = { action, ids };
    this.say(`${text} Undo for 10 seconds.`);
    this.undoButton.hidden = false;
    this.undoButton.textContent = action === "cancel" ? `Undo: queue ${jobs(ids.length, "")} again`
      : `Undo: cancel ${jobs(ids.length, "")}`;
    this.undoTimer = setTimeout(() => {
      const had = this.undoButton.contains(document.activeElement);
      this.undoButton.hidden = true;
      this.undoing = null;
      this.say(`${text} (too late to undo)`);
      if (had) document.getElementById("search-text").focus();  // the focused button is gone: keep the focus near
    }, UNDO_MS);
  }

  async undo() {
    if (!this.undoing) return;
    const { action, ids } = this.undoing;
    this.undoing = null;
    clearTimeout(this.undoTimer);
    this.undoButton.hidden = true;
    const back = await eachId(UNDO[action], ids);
    const undone = action === "cancel" ? "queued again" : "cancelled";
    const late = ids.length - back.length;
    this.say(`Undone: ${jobs(back.length, "")} ${undone}` + (late
      ? `; ${count(late)} had already moved on and ${late === 1 ? "was" : "were"} left as ${late === 1 ? "it is" : "they are"}.`
      : "."));
    this.done();
    document.getElementById("search-text").focus();  // the Undo button is gone: keep the focus near
  }
}
