// A throughput sparkline: jobs finished per second over the last two minutes.

const POINTS = 120;

export class Sparkline {
  constructor(svg, caption) {
    this.svg = svg;
    this.caption = caption;
    this.values = new Array(POINTS).fill(0);
    this.lastFinished = null;
    this.latestFinished = null;
  }

  observe(counts) {
    this.latestFinished = (counts.completed || 0) + (counts.failed || 0);
    if (this.lastFinished === null) this.lastFinished = this.latestFinished;
  }

  tick() {
    let rate = 0;
    if (this.latestFinished !== null) {
      rate = Math.max(0, this.latestFinished - this.lastFinished);
      this.lastFinished = this.latestFinished;
    }
    this.values.push(rate);
    this.values.shift();
    this.draw(rate);
  }

  draw(rate) {
    const max = Math.max(1, ...this.values);
    const points = this.values.map((v, i) => `${i},${(27 - (v / max) * 26).toFixed(1)}`).join(" ");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points);
    line.setAttribute("transform", `scale(${120 / (POINTS - 1)},1)`);
    this.svg.replaceChildren(line);
    this.caption.textContent = `${rate} jobs/s`;
  }
}
