// The dashboard: wires the submit form, the live link, the jobs table and the job view together.

import { api } from "./api.js";
import { openDetail } from "./detail.js";
import { JobsTable, showCounts } from "./jobs.js";
import { LiveLink } from "./live.js";
import { Sparkline } from "./spark.js";

const table = new JobsTable(document.getElementById("jobs"), {
  onOpen: (id) => openDetail(id, { onChange: (t) => table.apply(t) }),
  onView: (view) => link.sendView(view),
});
const spark = new Sparkline(document.getElementById("spark"), document.getElementById("rate"));

function counts(c) {
  if (!c) return;
  showCounts(c);
  spark.observe(c);
}

async function refresh() {
  counts(await table.reload());
}

const link = new LiveLink(document.getElementById("link"), {
  onHello: refresh,              // subscribed first, then read the list: no event falls in between
  onTask: (task) => table.apply(task),
  onCounts: counts,
  onResync: refresh,
});

document.getElementById("submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("urls");
  const error = document.getElementById("submit-error");
  const ok = document.getElementById("submit-ok");
  const urls = input.value.split("\n").map((u) => u.trim()).filter(Boolean);
  error.hidden = true;
  ok.hidden = true;
  if (urls.length === 0) {
    error.textContent = "Type at least one URL.";
    error.hidden = false;
    input.focus();
    return;
  }
  const { status, body } = await api("POST", "/queue_tasks", urls.length === 1 ? { url: urls[0] } : { urls });
  if (status === 201) {
    const tasks = body.tasks || [body.task];
    for (const task of tasks) table.apply(task);
    ok.textContent = `Queued ${tasks.length} job${tasks.length > 1 ? "s" : ""}.`;
    ok.hidden = false;
    input.value = "";
  } else {
    error.textContent = body?.error?.message || `the server answered ${status}`;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
});
document.getElementById("urls").addEventListener("input", (e) => e.target.removeAttribute("aria-invalid"));

document.getElementById("filters").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-status]");
  if (!button) return;
  for (const b of document.querySelectorAll("#filters button")) b.setAttribute("aria-pressed", String(b === button));
  counts(await table.filter(button.dataset.status));
});

document.getElementById("detail-close").addEventListener("click", () => document.getElementById("detail").close());

setInterval(() => spark.tick(), 1000);
setInterval(() => table.schedule(), 5000);  // ages move on
// A REST call first: if the server needs a token, this is where the page asks for it (a browser
// cannot see why a websocket was refused), so the live link starts with the token in hand.
api("GET", "/queue_tasks?limit=1").then(() => link.start());
