// The submit form: every line is checked by the server; bad lines are listed with their line number and
// value, and the valid ones are queued only when asked to. Tags and a priority apply to every line.

import { api } from "./api.js";
import { el } from "./format.js";

const MAX_ROUNDS = 100;  // bad lines found one answer at a time; past this many, stop
const BAD_LINE = /^urls\[(\d+)\]: (.*)$/s;
const SENTINEL = "htp://a-line-that-is-always-refused.invalid/";  // see findBadLines

// Every bad line, with nothing queued: the server names only the first bad line of a request and stores
// nothing of a request with one, so ask again without each line it names, always with a last line it
// refuses (so a request never goes through), until the line it names is that last one.
async function findBadLines(lines, extra) {
  let left = lines;
  const bad = [];
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const { status, body } = await api("POST", "/queue_tasks", { urls: [...left.map((l) => l.value), SENTINEL], ...extra });
    const match = status === 400 && BAD_LINE.exec(body?.error?.message || "");
    if (!match || Number(match[1]) >= left.length) break;
    const index = Number(match[1]);
    bad.push({ ...left[index], message: match[2] });
    left = left.filter((_, i) => i !== index);
  }
  return bad;
}

// Queue the lines the server accepts: a request with a bad line stores nothing and names that line, so
// send again without it until the rest goes through. Returns the answer and the lines left out.
async function queueValidLines(lines, extra) {
  let good = lines;
  const bad = [];
  for (let round = 0; round < MAX_ROUNDS && good.length; round++) {
    const { status, body } = await api("POST", "/queue_tasks", { urls: good.map((l) => l.value), ...extra });
    const match = status === 400 && BAD_LINE.exec(body?.error?.message || "");
    if (!match) return { status, body, bad };
    const index = Number(match[1]);
    bad.push({ ...good[index], message: match[2] });
    good = good.filter((_, i) => i !== index);
  }
  return { status: 400, body: { error: { message: "no valid line left to queue" } }, bad };
}

export function wireSubmitForm(form, onTasks) {
  const input = form.querySelector("#urls");
  const error = form.querySelector("#submit-error");
  const ok = form.querySelector("#submit-ok");
  const list = form.querySelector("#submit-bad");
  const queueValid = form.querySelector("#queue-valid");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const lines = input.value.split("\n").map((value, i) => ({ line: i + 1, value: value.trim() }))
      .filter((l) => l.value && !l.value.startsWith("#"));
    error.hidden = true;
    ok.hidden = true;
    list.replaceChildren();
    if (lines.length === 0) return fail("Type at least one URL.");
    const extra = {};
    const tags = form.querySelector("#submit-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) extra.tags = tags;
    const priority = form.querySelector("#submit-priority").value;
    if (priority !== "") extra.priority = Number(priority);
    const { status, body, bad } = queueValid.checked ? await queueValidLines(lines, extra)
      : { ...(await api("POST", "/queue_tasks", { urls: lines.map((l) => l.value), ...extra })), bad: [] };
    const first = status === 400 && BAD_LINE.exec(body?.error?.message || "");
    if (first) {
      const line = lines[Number(first[1])];
      const all = await findBadLines(lines, extra);
      list.setAttribute("aria-label", "lines that were refused");
      if (all.length > 1) {
        list.replaceChildren(...all.map((b) => el("li", { text: `line ${b.line} (${b.value}): ${b.message}` })));
        return fail(`${all.length} lines are refused, listed below; the first, Line ${line.line} (${line.value}): ` +
          `${first[2]}. Nothing was queued: fix them, or tick "Queue the valid lines".`);
      }
      return fail(`Line ${line.line} (${line.value}): ${first[2]}. Nothing was queued: fix it, or tick ` +
        "\"Queue the valid lines\".");
    }
    list.setAttribute("aria-label", "lines that were skipped");
    list.replaceChildren(...bad.map((b) => el("li", { text: `line ${b.line} (${b.value}): ${b.message}` })));
    if (status !== 201) return fail(body?.error?.message || `the server answered ${status}`);
    const tasks = body.tasks || [body.task];
    onTasks(tasks);
    ok.textContent = `Queued ${tasks.length} job${tasks.length > 1 ? "s" : ""}.` +
      (list.children.length ? ` Skipped the ${list.children.length} line(s) listed.` : "");
    ok.hidden = false;
    input.value = "";
    return undefined;
  });
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}
