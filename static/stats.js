// Live statistics from the server's `stats` messages: the whole service's figures (`"scope": "service"`, every
// process's work, read back from the database), whichever process sends them. Each figure says what it counts
// and over which time: the last minute in words; jobs finished, the error rate and the p95 fetch time (of one
// attempt, not the wait before it) as charts with axes over the last hour (by minute) or the last day (by hour),
// each with its value under the pointer and a text summary; and the busiest hosts of the last hour as a table.

import { drawBars } from "./chart.js";
import { el } from "./format.js";

const RANGES = {
  hour: { key: "per_minute", slots: 60, slotMs: 60_000, per: "minute", span: "the last hour" },
  day: { key: "per_hour", slots: 24, slotMs: 3_600_000, per: "hour", span: "the last day" },
};

function ms(value) {
  if (value == null) return "—";
  if (value >= 1000) return `${(value / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} s`;
  return `${Math.round(value)} ms`;
}

function percent(rate) {
  return `${(rate * 100).toLocaleString(undefined, { maximumFractionDigits: 1 })} %`;
}

function clock(iso, withDay = false) {
  if (!iso) return "—";
  const at = new Date(iso);
  return withDay ? at.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" })
    : at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class StatsPanel {
  constructor(section) {
    this.section = section;
    this.summary = section.querySelector("#stats-summary");
    this.chart = section.querySelector("#stats-chart");
    this.chartText = section.querySelector("#stats-chart-text");
    this.hosts = section.querySelector("#stats-hosts");
    this.errors = section.querySelector("#stats-errors");
    this.errorsText = section.querySelector("#stats-errors-text");
    this.latency = section.querySelector("#stats-latency");
    this.latencyText = section.querySelector("#stats-latency-text");
    this.scope = section.querySelector("#stats-scope");
    this.range = "hour";
    this.last = null;
    for (const button of section.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => {
        this.range = button.dataset.range;
        for (const b of section.querySelectorAll("[data-range]")) b.setAttribute("aria-pressed", String(b === button));
        if (this.last) this.apply(this.last);
      });
    }
  }

  apply(stats) {
    this.last = stats;
    // a process that could only count its own work would say so; the service's figures are every process's
    this.scope.textContent = stats.scope === "service" ? "of the whole service (every process)" : "of this process only";
    const last = stats.last_minute;
    this.summary.textContent = last.finished
      ? `Last minute: ${last.finished_per_s.toLocaleString()} jobs/s finished by the whole service (every process),` +
        ` error rate ${percent(last.error_rate)} (${last.failed} failed, ${last.http_errors} HTTP 4xx/5xx),` +
        ` fetch time of one attempt p50 ${ms(last.p50_ms)}, p95 ${ms(last.p95_ms)}.`
      : "No job finished in the last minute.";
    this.drawCharts(stats);
    this.hosts.replaceChildren(...stats.hosts.slice(0, 10).map((h) => el("tr", {},
      el("td", { text: h.host }), el("td", { text: h.finished.toLocaleString() }),
      el("td", { text: percent(h.error_rate) }), el("td", { text: ms(h.p95_ms) }))));
  }

  drawCharts(stats) {
    const range = RANGES[this.range];
    const points = stats[range.key] || [];
    const end = nextBoundary(new Date(stats.at || Date.now()), range.slotMs);
    const day = this.range === "day";
    for (const per of this.section.querySelectorAll("[data-per]")) {
      per.firstChild.textContent = per.firstChild.textContent.replace(/^per \w+, [^:]*/, `per ${range.per}, ${range.span}`);
    }
    const readout = (svg) => svg.nextElementSibling;
    const base = { end, slots: range.slots, slotMs: range.slotMs };
    drawBars(this.chart, points, { ...base, name: `jobs finished per ${range.per}, ${range.span}`, readout: readout(this.chart),
      series: [["bar", (p) => p.finished], ["errors", (p) => p.failed + p.http_errors]],
      unit: (v) => `${Math.round(v).toLocaleString()}`,
      tip: (p) => `${clock(p.t, day)}: ${p.finished.toLocaleString()} jobs finished, ${(p.failed + p.http_errors).toLocaleString()} `
        + `failed or HTTP 4xx/5xx` });
    drawBars(this.errors, points, { ...base, name: `error rate per ${range.per}, ${range.span}`, readout: readout(this.errors),
      series: [["errors", (p) => p.error_rate]], top: Math.max(0.01, niceRate(points)),
      unit: percent, tip: (p) => `${clock(p.t, day)}: error rate ${percent(p.error_rate)} (${p.failed} failed, `
        + `${p.http_errors} HTTP 4xx/5xx of ${p.finished})` });
    drawBars(this.latency, points, { ...base, name: `p95 fetch time per ${range.per}, ${range.span}`,
      readout: readout(this.latency), series: [["bar", (p) => p.p95_ms ?? 0]], unit: ms,
      tip: (p) => `${clock(p.t, day)}: p95 ${ms(p.p95_ms)}, p50 ${ms(p.p50_ms)} (one fetch attempt)` });
    this.describe(points, range, day);
  }

  // The charts in words, for everyone (and what a screen reader reads of them).
  describe(points, range, day) {
    const total = points.reduce((n, p) => n + p.finished, 0);
    const peak = worst(points, (p) => p.finished);
    const span = range.span.replace("the ", "");
    this.chartText.textContent = points.length
      ? `${total.toLocaleString()} jobs finished in the ${span} over ${points.length} active ${range.per}(s); ` +
        `the busiest ${range.per} (${clock(peak.t, day)}) had ${peak.finished.toLocaleString()}.`
      : `No job finished in the ${span}.`;
    const failing = worst(points, (p) => p.error_rate);
    const bad = points.reduce((n, p) => n + p.failed + p.http_errors, 0);
    const over = this.range === "hour" ? "the hour" : "the day";
    this.errorsText.textContent = points.length
      ? `Error rate over ${over} ${percent(total ? bad / total : 0)}; the worst ${range.per} (${clock(failing.t, day)}) ` +
        `had ${percent(failing.error_rate)}.`
      : `Error rate per ${range.per}: no data yet.`;
    const slowest = worst(points, (p) => p.p95_ms ?? 0);
    this.latencyText.textContent = points.length
      ? `p95 fetch time per ${range.per}: at most ${ms(slowest.p95_ms)} (${clock(slowest.t, day)}), ` +
        `${ms(points[points.length - 1].p95_ms)} in the latest active ${range.per}.`
      : `p95 fetch time per ${range.per}: no data yet.`;
  }
}

// The end of the window: the end of the slot `at` is in, so the newest slot is the last one drawn.
function nextBoundary(at, slotMs) {
  return new Date(Math.floor(at.getTime() / slotMs) * slotMs + slotMs);
}

function niceRate(points) {
  const most = Math.max(0, ...points.map((p) => p.error_rate || 0));
  return [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1].find((v) => v >= most) ?? 1;
}

// The point where `value` is highest (the first such), or an empty one.
function worst(points, value) {
  return points.reduce((best, p) => (value(p) > value(best) ? p : best), points[0] ?? { finished: 0 });
}
