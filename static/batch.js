// The batch view: one batch's progress, counts by status and actions, kept live by events and a slow poll.

import { api, canChange } from "./api.js";
import { count, el, jobMarks, timeEl } from "./format.js";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const POLL_MS = 2000;  // live even before (or without) batch messages from the server

function total(counts) {
  return STATUSES.reduce((sum, status) => sum + (counts[status] || 0), 0);
}

// The one line that says how far a batch is, shown under its bar and read out as the bar's value.
function summary(batch) {
  const c = batch.counts;
  const done = (c.completed || 0) + (c.failed || 0) + (c.cancelled || 0);
  let text = `${count(done)} of ${count(batch.total)} done, ${count(c.failed)} failed`;
  if (c.cancelled) text += `, ${count(c.cancelled)} cancelled`;
  return text;
}

// Ask before acting, in the page's own dialog; resolves true only for the confirming button. The confirming
// button is red for what destroys (cancel, delete), and normal for what does not (retry); `note` is a second
// line (whether it can be undone).
export function confirmAction(text, yesLabel, noLabel = "Keep them", { danger = true, note = "" } = {}) {
  const dialog = document.getElementById("confirm");
  if (dialog.open) return Promise.resolve(false);
  document.getElementById("confirm-text").textContent = text;
  const noteBox = document.getElementById("confirm-note");
  noteBox.textContent = note;
  noteBox.hidden = !note;
  const yes = document.getElementById("confirm-yes");
  yes.className = danger ? "danger" : "primary";
  yes.textContent = yesLabel;
  document.getElementById("confirm-no").textContent = noLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

export class BatchView {
  constructor(root, { onCounts }) {
    this.root = root;
    this.onCounts = onCounts;
    this.id = null;
    this.batch = null;
    this.actionNote = "";           // what the user's last action did, until the batch's finish is told
    this.version = 0;               // bumped by every state shown: a poll answer older than it is dropped
    this.polling = false;
    this.timer = null;
    const $ = (id) => document.getElementById(id);
    this.title = $("batch-title");
    this.idText = $("batch-id");
    this.error = $("batch-error");
    this.main = $("batch-main");
    this.progress = $("batch-progress");
    this.summary = $("batch-summary");
    this.facts = $("batch-facts");
    this.status = $("batch-status");
    this.cancelButton = $("batch-cancel");
    this.retryButton = $("batch-retry");
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.retryButton.addEventListener("click", () => this.retry());
  }

  async open(id) {
    if (id === this.id) return;
    this.close();
    this.id = id;
    this.idText.textContent = id;
    this.root.hidden = false;
    this.main.hidden = true;
    this.error.hidden = true;
    this.status.textContent = "";
    this.actionNote = "";
    this.title.focus();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    await this.refresh();
  }

  close() {
    clearInterval(this.timer);
    this.timer = null;
    this.id = null;
    this.batch = null;
    this.root.hidden = true;
  }

  poll() {
    if (!this.id || this.polling || document.hidden || (this.batch && this.batch.finished_at)) return;
    this.polling = true;
    this.refresh().finally(() => { this.polling = false; });
  }

  async refresh() {
    const { id, version } = this;
    const { status, body } = await api("GET", `/batches/${encodeURIComponent(id)}`);
    if (id !== this.id || version !== this.version) return;  // closed, switched, or a newer state came live
    if (status === 200) this.apply(body.batch);
    else this.fail(status, body);
  }

  // A state of a batch, from the API or the live link; other batches are not this view's business.
  apply(batch) {
    if (!this.id || !batch || batch.id !== this.id) return;
    const before = this.batch;
    this.version += 1;
    this.batch = batch;
    this.error.hidden = true;
    this.main.hidden = false;
    this.render(batch);
    if (before && !before.finished_at && batch.finished_at) {
      // a finish the user's own action caused keeps saying what that action did, whichever answer came first
      this.status.textContent = [this.actionNote, `Batch finished: ${summary(batch)}.`].filter(Boolean).join(" ");
      this.actionNote = "";
    }
    this.onCounts(batch.counts);
  }

  fail(status, body) {
    this.error.textContent = body?.error?.message || `the server answered ${status}`;
    this.error.hidden = false;
    if (status === 400 || status === 404) {  // this id will never load: stop asking
      clearInterval(this.timer);
      this.main.hidden = true;
    }
  }

  render(batch) {
    const c = batch.counts;
    const done = (c.completed || 0) + (c.failed || 0) + (c.cancelled || 0);
    const unfinished = (c.queued || 0) + (c.running || 0);
    const text = summary(batch);
    this.progress.max = Math.max(batch.total, total(c), 1);
    this.progress.value = done;
    this.progress.setAttribute("aria-valuetext", text);
    this.progress.classList.toggle("done", Boolean(batch.finished_at));
    this.summary.textContent = text;
    for (const status of STATUSES) {
      this.root.querySelector(`[data-batch-count=${status}]`).textContent = count(c[status]);
    }
    const rows = [["Created", timeEl(batch.created_at)], ["Finished", timeEl(batch.finished_at) || "not yet"],
      ["Tags", jobMarks({ tags: batch.tags })]];
    this.facts.replaceChildren(...rows.filter(([, v]) => v).flatMap(([name, value]) =>
      [el("dt", { text: name }), el("dd", {}, value)]));
    this.cancelButton.hidden = unfinished === 0 || !canChange();
    this.retryButton.hidden = !c.failed || !canChange();
    this.retryButton.textContent = `Retry failed (${count(c.failed)})`;
  }

  async cancel() {
    const c = this.batch.counts;
    const unfinished = (c.queued || 0) + (c.running || 0);
    const jobs = `${count(unfinished)} unfinished job${unfinished === 1 ? "" : "s"}`;
    const sure = await confirmAction(`Cancel the ${jobs} of this batch? Jobs already finished keep their results.`,
      `Cancel ${jobs}`);
    if (sure) this.act("DELETE", `/batches/${encodeURIComponent(this.id)}`, `Cancelled ${jobs}.`);
  }

  retry() {
    const failed = this.batch.counts.failed || 0;
    this.act("POST", `/batches/${encodeURIComponent(this.id)}/retry`,
      `Queued ${count(failed)} failed job${failed === 1 ? "" : "s"} again.`);
  }

  async act(method, path, done) {
    const id = this.id;
    const { status, body } = await api(method, path);
    if (id !== this.id) return;
    if (status !== 200) {
      this.error.textContent = body?.error?.message || `the server answered ${status}`;
      this.error.hidden = false;
      return;
    }
    this.actionNote = done;
    this.status.textContent = done;
    this.apply(body.batch);
    this.title.focus();  // the button pressed may have just been hidden
  }
}
