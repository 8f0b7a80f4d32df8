// Live statistics from the server's `stats` messages (the whole service's, whichever process sends them): the
// last minute in words, finished jobs per minute over the hour, its error rate and p95 fetch time (of one
// attempt, not the wait before it) as SVG bar charts each with a text summary, and the busiest hosts as a table.

import { el } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

function ms(value) {
  return value == null ? "—" : value >= 1000 ? `${(value / 1000).toLocaleString()} s` : `${value} ms`;
}

function percent(rate) {
  return `${(rate * 100).toLocaleString(undefined, { maximumFractionDigits: 1 })} %`;
}

export class StatsPanel {
  constructor(section) {
    this.summary = section.querySelector("#stats-summary");
    this.chart = section.querySelector("#stats-chart");
    this.chartText = section.querySelector("#stats-chart-text");
    this.hosts = section.querySelector("#stats-hosts");
    this.errors = section.querySelector("#stats-errors");
    this.errorsText = section.querySelector("#stats-errors-text");
    this.latency = section.querySelector("#stats-latency");
    this.latencyText = section.querySelector("#stats-latency-text");
  }

  apply(stats) {
    const last = stats.last_minute;
    this.summary.textContent = last.finished
      ? `Last minute: ${last.finished_per_s.toLocaleString()} jobs/s finished by the whole service (every process),` +
        ` error rate ${percent(last.error_rate)} (${last.failed} failed, ${last.http_errors} HTTP 4xx/5xx),` +
        ` fetch time of one attempt p50 ${ms(last.p50_ms)}, p95 ${ms(last.p95_ms)}.`
      : "No job finished in the last minute.";
    this.drawChart(stats.per_minute);
    this.hosts.replaceChildren(...stats.hosts.slice(0, 10).map((h) => el("tr", {},
      el("td", { text: h.host }), el("td", { text: h.finished.toLocaleString() }),
      el("td", { text: percent(h.error_rate) }), el("td", { text: ms(h.p95_ms) }))));
  }

  drawChart(minutes) {
    const most = Math.max(1, ...minutes.map((m) => m.finished));
    bars(this.chart, minutes, [["", (m) => m.finished / most], ["errors", (m) => (m.failed + m.http_errors) / most]]);
    const total = minutes.reduce((n, m) => n + m.finished, 0);
    const peak = worst(minutes, (m) => m.finished);
    this.chartText.textContent = minutes.length
      ? `${total.toLocaleString()} jobs finished in the last hour over ${minutes.length} active minute(s); ` +
        `the busiest minute had ${peak.finished.toLocaleString()}.`
      : "No job finished in the last hour.";
    bars(this.errors, minutes, [["", (m) => m.error_rate]]);
    const failing = worst(minutes, (m) => m.error_rate);
    const bad = minutes.reduce((n, m) => n + m.failed + m.http_errors, 0);
    this.errorsText.textContent = minutes.length
      ? `Error rate over the hour ${percent(total ? bad / total : 0)}; the worst minute (${clock(failing.t)}) ` +
        `had ${percent(failing.error_rate)}.`
      : "Error rate per minute: no data yet.";
    const slowest = worst(minutes, (m) => m.p95_ms ?? 0);
    const top = Math.max(1, slowest.p95_ms ?? 0);
    bars(this.latency, minutes, [["", (m) => (m.p95_ms ?? 0) / top]]);
    this.latencyText.textContent = minutes.length
      ? `p95 fetch time per minute: at most ${ms(slowest.p95_ms)} (${clock(slowest.t)}), ` +
        `${ms(minutes[minutes.length - 1].p95_ms)} in the latest active minute.`
      : "p95 fetch time per minute: no data yet.";
  }
}

// The minute where `value` is highest (the first such), or an empty one.
function worst(minutes, value) {
  return minutes.reduce((best, m) => (value(m) > value(best) ? m : best), minutes[0] ?? { finished: 0 });
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "—";
}

// One 6-unit bar per minute (the last 60), each series a fraction 0..1 of the chart's height.
function bars(svg, minutes, series) {
  const rects = [];
  minutes.slice(-60).forEach((m, i) => {
    for (const [cls, fraction] of series) {
      const h = Math.round(Math.min(1, fraction(m) || 0) * 56);
      if (!h) continue;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(i * 8));
      rect.setAttribute("y", String(58 - h));
      rect.setAttribute("width", "6");
      rect.setAttribute("height", String(h));
      if (cls) rect.setAttribute("class", cls);
      rects.push(rect);
    }
  });
  svg.replaceChildren(...rects);
}
