// The hosts view (#/hosts?q=part&edit=HOST&cursor=C): each host's queued and running jobs, its pacing policy
// (what applies, and whether it is the server's default), its next allowed start, its error rate and whether it
// is paused, with Pause/Resume and a policy form (PUT /hosts/:host). Re-read every few seconds; rows are keyed by
// host and changed in place, and while the pointer or focus is in the table no row is added or removed.

import { pageAddress } from "./address.js";
import { api, canChange } from "./api.js";
import { count, el } from "./format.js";

const REFRESH_MS = 3000;
const PAGE_SIZE = 100;
const FIELDS = { max_concurrency: "host-max-concurrency", min_delay_ms: "host-min-delay" };

function nextStart(iso, now = Date.now()) {
  if (!iso) return "now";
  const seconds = (Date.parse(iso) - now) / 1000;
  if (seconds <= 0) return "now";
  return seconds < 90 ? `in ${seconds.toFixed(1)} s` : `in ${Math.round(seconds / 60)} min`;
}

function rate(recent) {
  if (recent.error_rate == null) return "—";
  return `${(recent.error_rate * 100).toFixed(1)} % of ${count(recent.finished)}`;
}

export class HostsView {
  constructor(section, { go }) {
    this.section = section;
    this.go = go;
    this.params = new URLSearchParams();
    this.body = section.querySelector("#hosts-table tbody");
    this.area = section.querySelector("#hosts-area");
    this.empty = section.querySelector("#hosts-empty");
    this.error = section.querySelector("#hosts-error");
    this.status = section.querySelector("#hosts-status");
    this.search = section.querySelector("#hosts-q");
    this.more = section.querySelector("#hosts-more");
    this.first = section.querySelector("#hosts-first");
    this.form = section.querySelector("#host-policy");
    this.formError = section.querySelector("#host-policy-error");
    this.rows = new Map();  // host -> {tr, host}
    this.latest = null;     // the last list read, laid out once the reader leaves the table
    this.timer = null;
    this.pointer = false;
    this.loading = null;
    this.area.addEventListener("pointerenter", () => { this.pointer = true; });
    this.area.addEventListener("pointerleave", () => { this.pointer = false; this.settle(); });
    this.area.addEventListener("focusout", () => setTimeout(() => this.settle(), 0));
    section.querySelector("#hosts-search").addEventListener("submit", (event) => {
      event.preventDefault();
      this.go(pageAddress("#/hosts", { q: this.search.value.trim() }));
    });
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.save(); });
    for (const id of Object.values(FIELDS)) {
      const input = document.getElementById(id);
      input.addEventListener("input", () => this.clearField(input));
    }
  }

  address(changes = {}) {
    const params = { q: this.params.get("q"), cursor: this.params.get("cursor"), edit: this.params.get("edit"), ...changes };
    return pageAddress("#/hosts", params);
  }

  async open({ params }) {
    const before = this.params;
    const sameList = this.timer && before.get("q") === params.get("q") && before.get("cursor") === params.get("cursor");
    this.params = params;
    this.section.hidden = false;
    this.search.value = params.get("q") || "";
    if (!sameList) {
      this.rows.clear();
      this.body.replaceChildren();
      this.latest = null;
      this.status.textContent = "";
    }
    clearInterval(this.timer);
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
    await this.load();
    this.showForm(params.get("edit"));
    if (!sameList && !this.section.contains(document.activeElement)) this.section.querySelector("h2").focus();
  }

  close() {
    clearInterval(this.timer);
    this.timer = null;
    this.section.hidden = true;
  }

  busy() {
    return this.pointer || this.area.contains(document.activeElement);
  }

  async load() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const key of ["q", "cursor"]) if (this.params.get(key)) query.set(key, this.params.get(key));
    const asked = query.toString();
    const load = api("GET", `/hosts?${query}`);
    this.loading = load;
    const { status, body } = await load;
    if (this.loading !== load || this.section.hidden) return;
    this.error.hidden = status === 200 || status === 0;
    if (status !== 200) {
      this.error.textContent = body?.error?.message || `the server answered ${status}`;
      return;
    }
    this.latest = { hosts: body.hosts, next: body.next, asked };
    this.more.hidden = !body.next;
    if (body.next) this.more.href = this.address({ cursor: body.next, edit: null });
    this.first.hidden = !this.params.get("cursor");
    this.first.href = this.address({ cursor: null, edit: null });
    for (const host of body.hosts) {
      const known = this.rows.get(host.host);
      if (known) { known.host = host; this.fill(known.tr, host); }
    }
    this.settle();
  }

  // Lay the rows out as the last read says (new hosts in, gone ones out), unless the reader is working there.
  settle() {
    if (!this.latest || this.busy()) return;
    const { hosts } = this.latest;
    const seen = new Set(hosts.map((h) => h.host));
    for (const [name, { tr }] of this.rows) if (!seen.has(name)) { tr.remove(); this.rows.delete(name); }
    let before = this.body.firstChild;
    for (const host of hosts) {
      let known = this.rows.get(host.host);
      if (!known) {
        known = { tr: this.row(host), host };
        this.rows.set(host.host, known);
      }
      if (known.tr !== before) this.body.insertBefore(known.tr, before);
      before = known.tr.nextSibling;
    }
    this.empty.hidden = hosts.length > 0;
    this.empty.textContent = this.params.get("q") ? `No host matches "${this.params.get("q")}".`
      : "No host has queued or running jobs or a policy.";
  }

  row(host) {
    const name = host.host;
    const pause = el("button", { type: "button", "data-action": "pause" });
    pause.addEventListener("click", () => this.setPaused(name, !this.rows.get(name).host.policy.paused));
    const edit = el("button", { type: "button", "data-action": "edit", text: "Edit policy", "aria-label": `Edit the policy of ${name}` });
    edit.addEventListener("click", () => this.go(this.address({ edit: name })));
    const tr = el("tr", { "data-host": name },
      el("th", { scope: "row", class: "mono", text: name }),
      el("td", { "data-cell": "queued", class: "num" }), el("td", { "data-cell": "running", class: "num" }),
      el("td", { "data-cell": "concurrency" }), el("td", { "data-cell": "delay" }),
      el("td", { "data-cell": "next" }), el("td", { "data-cell": "errors" }), el("td", { "data-cell": "state" }),
      el("td", { class: "actions" }, ...(canChange() ? [pause, " ", edit] : [])));
    this.fill(tr, host);
    return tr;
  }

  fill(tr, host) {
    const set = (cell, text) => {
      const td = tr.querySelector(`[data-cell=${cell}]`);
      if (td.textContent !== text) td.textContent = text;
    };
    const { policy, effective } = host;
    set("queued", count(host.queued));
    set("running", count(host.running));
    set("concurrency", `${effective.max_concurrency}${policy.max_concurrency == null ? " (default)" : ""}`);
    set("delay", `${count(effective.min_delay_ms)} ms${policy.min_delay_ms == null ? " (default)" : ""}`);
    set("next", policy.paused ? "paused" : nextStart(host.next_start_at));
    set("errors", rate(host.recent));
    tr.querySelector("[data-cell=state]").replaceChildren(policy.paused
      ? el("span", { class: "badge cancelled", text: "paused" }) : el("span", { class: "badge running", text: "active" }));
    tr.classList.toggle("paused", policy.paused);
    const pause = tr.querySelector("[data-action=pause]");
    if (pause) {
      pause.textContent = policy.paused ? "Resume" : "Pause";
      pause.setAttribute("aria-label", `${policy.paused ? "Resume" : "Pause"} ${host.host}`);
    }
  }

  async setPaused(name, paused) {
    const button = this.rows.get(name)?.tr.querySelector("[data-action=pause]");
    if (button?.dataset.busy) return;
    if (button) button.dataset.busy = "1";  // not disabled: that would take the focus away from it
    const { status, body } = await this.put(name, { paused });
    if (button) delete button.dataset.busy;
    if (status !== 200) {
      this.error.textContent = `${name}: ${body?.error?.message || `the server answered ${status}`}`;
      this.error.hidden = false;
      return;
    }
    this.error.hidden = true;
    this.status.textContent = paused ? `Paused ${name}: its queued jobs wait; running ones finish.`
      : `Resumed ${name}: its queued jobs start again.`;
  }

  async put(name, change) {
    const answer = await api("PUT", `/hosts/${encodeURIComponent(name)}`, change);
    const known = this.rows.get(name);
    if (answer.status === 200 && known) { known.host = answer.body.host; this.fill(known.tr, answer.body.host); }
    return answer;
  }

  // The policy form for one host (the address's `edit`), filled with what the host's policy sets.
  async showForm(name) {
    this.formError.hidden = true;
    for (const id of Object.values(FIELDS)) this.clearField(document.getElementById(id));
    if (!name || !canChange()) {
      const was = !this.form.hidden && this.editing;
      this.form.hidden = true;
      this.editing = null;
      if (was) this.rows.get(was)?.tr.querySelector("[data-action=edit]")?.focus();  // back where the reader was
      return;
    }
    let host = this.rows.get(name)?.host || this.latest?.hosts.find((h) => h.host === name);
    if (!host) {
      const { status, body } = await api("GET", `/hosts/${encodeURIComponent(name)}`);
      if (status !== 200) {
        this.form.hidden = true;
        this.error.textContent = body?.error?.message || `the server answered ${status}`;
        this.error.hidden = false;
        return;
      }
      host = body.host;
    }
    this.editing = name;
    document.getElementById("host-policy-host").textContent = name;
    document.getElementById(FIELDS.max_concurrency).value = host.policy.max_concurrency ?? "";
    document.getElementById(FIELDS.max_concurrency).placeholder = `server's: ${host.effective.max_concurrency}`;
    document.getElementById(FIELDS.min_delay_ms).value = host.policy.min_delay_ms ?? "";
    document.getElementById(FIELDS.min_delay_ms).placeholder = "server's";
    document.getElementById("host-policy-close").href = this.address({ edit: null });
    this.form.hidden = false;
    document.getElementById("host-policy-title").focus();
  }

  async save() {
    const name = this.editing;
    const change = {};
    for (const [field, id] of Object.entries(FIELDS)) {
      const input = document.getElementById(id);
      this.clearField(input);
      if (input.validity.badInput) return this.fieldError(field, "must be a whole number, or blank for the server's");
      change[field] = input.value === "" ? null : Number(input.value);
    }
    this.formError.hidden = true;
    const { status, body } = await this.put(name, change);
    if (status === 200) {
      this.status.textContent = `Saved the policy of ${name}.`;
      this.go(this.address({ edit: null }));
      return undefined;
    }
    const message = body?.error?.message || `the server answered ${status}`;
    const field = Object.keys(FIELDS).find((f) => message.startsWith(f));
    if (field) return this.fieldError(field, message.slice(field.length).trim());
    this.formError.textContent = `Not saved: ${message}`;
    this.formError.hidden = false;
    return undefined;
  }

  fieldError(field, message) {
    const input = document.getElementById(FIELDS[field]);
    const box = document.getElementById(`${FIELDS[field]}-error`);
    box.textContent = `Not saved: ${message}.`;
    box.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  clearField(input) {
    input.removeAttribute("aria-invalid");
    const box = document.getElementById(`${input.id}-error`);
    if (box) { box.hidden = true; box.textContent = ""; }
  }
}
