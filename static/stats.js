// Live statistics from the server's `stats` messages: the last minute in words, finished jobs per minute
// over the hour as an SVG bar chart with a text summary, and the busiest hosts as a table.

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
  }

  apply(stats) {
    const last = stats.last_minute;
    this.summary.textContent = last.finished
      ? `Last minute: ${last.finished_per_s.toLocaleString()} jobs/s finished, error rate ${percent(last.error_rate)}` +
        ` (${last.failed} failed, ${last.http_errors} HTTP 4xx/5xx), fetch time p50 ${ms(last.p50_ms)}, p95 ${ms(last.p95_ms)}.`
      : "No job finished in the last minute.";
    this.drawChart(stats.per_minute);
    this.hosts.replaceChildren(...stats.hosts.slice(0, 10).map((h) => el("tr", {},
      el("td", { text: h.host }), el("td", { text: h.finished.toLocaleString() }),
      el("td", { text: percent(h.error_rate) }), el("td", { text: ms(h.p95_ms) }))));
  }

  drawChart(minutes) {
    const most = Math.max(1, ...minutes.map((m) => m.finished));
    const bars = [];
    minutes.slice(-60).forEach((m, i) => {
      const height = Math.round((m.finished / most) * 56);
      const bad = Math.round(((m.failed + m.http_errors) / most) * 56);
      for (const [cls, h] of [["", height], ["errors", bad]]) {
        if (!h) continue;
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("x", String(i * 8));
        rect.setAttribute("y", String(58 - h));
        rect.setAttribute("width", "6");
        rect.setAttribute("height", String(h));
        if (cls) rect.setAttribute("class", cls);
        bars.push(rect);
      }
    });
    this.chart.replaceChildren(...bars);
    const total = minutes.reduce((n, m) => n + m.finished, 0);
    const peak = minutes.reduce((best, m) => (m.finished > best.finished ? m : best), { finished: 0 });
    this.chartText.textContent = minutes.length
      ? `${total.toLocaleString()} jobs finished in the last hour over ${minutes.length} active minute(s); ` +
        `the busiest minute had ${peak.finished.toLocaleString()}.`
      : "No job finished in the last hour.";
  }
}
