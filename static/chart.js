// A bar chart people can read, drawn as SVG by hand (no library, no build step): a time axis over the whole
// window (the last hour by minute, or the last day by hour) with clock times, a value axis with its unit, one
// bar per slot placed by its time (slots with nothing stay empty), and the value of the slot under the pointer
// (or in keyboard focus) written out beside the chart. Every bar also carries a <title> with its values.

const SVG = "http://www.w3.org/2000/svg";
const W = 600;
const H = 160;
const PAD = { left: 56, right: 10, top: 10, bottom: 26 };

function node(tag, attrs = {}, text = null) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== null) n.textContent = text;
  return n;
}

function clock(date, withDay) {
  return withDay ? date.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" })
    : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// A "nice" top for the value axis: 1, 2 or 5 times a power of ten, at least `most`.
function niceTop(most) {
  if (most <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(most));
  return [1, 2, 5, 10].map((f) => f * power).find((v) => v >= most);
}

// Draw `points` ([{t, ...}], oldest first) into `svg` over the window that ends at `end` (a Date) and has
// `slots` slots of `slotMs`. `series`: [[class, value(p)]] stacked from the axis (the first is the total, later
// ones drawn over it); `unit(v)` writes a value; `tip(p)` the text of a slot; `readout` the element that shows it.
export function drawBars(svg, points, { end, slots, slotMs, series, unit, tip, readout, top = null, name }) {
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const start = end.getTime() - slots * slotMs;
  const most = top ?? niceTop(Math.max(0, ...points.map((p) => series[0][1](p) || 0)));
  const parts = [];
  // the value axis: 0, half and the top, with the unit
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    parts.push(node("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: f ? "grid" : "axis" }));
    parts.push(node("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, unit(most * f)));
  }
  // the time axis: five clock times across the window
  const withDay = slots * slotMs > 6 * 3600_000;
  for (let i = 0; i <= 4; i++) {
    const at = new Date(start + (i / 4) * slots * slotMs);
    const x = PAD.left + (i / 4) * plotW;
    parts.push(node("line", { x1: x, x2: x, y1: PAD.top + plotH, y2: PAD.top + plotH + 4, class: "axis" }));
    parts.push(node("text", { x, y: H - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "tick" },
      clock(at, withDay)));
  }
  const slotW = plotW / slots;
  const bySlot = new Map();
  for (const p of points) {
    const slot = Math.floor((Date.parse(p.t) - start) / slotMs);
    if (slot < 0 || slot >= slots) continue;
    bySlot.set(slot, p);
    const x = PAD.left + slot * slotW + slotW * 0.12;
    for (const [cls, value] of series) {
      const h = Math.min(1, (value(p) || 0) / most) * plotH;
      if (h <= 0) continue;
      const bar = node("rect", { x: x.toFixed(1), y: (PAD.top + plotH - h).toFixed(1), width: (slotW * 0.76).toFixed(1),
        height: h.toFixed(1), class: cls || "bar" });
      bar.append(node("title", {}, tip(p)));
      parts.push(bar);
    }
  }
  const marker = node("rect", { x: 0, y: PAD.top, width: slotW, height: plotH, class: "hover", visibility: "hidden" });
  parts.push(marker);
  svg.replaceChildren(...parts);
  const show = (slot) => {
    if (slot === null) { marker.setAttribute("visibility", "hidden"); readout.textContent = ""; return; }
    const p = bySlot.get(slot);
    marker.setAttribute("x", (PAD.left + slot * slotW).toFixed(1));
    marker.setAttribute("visibility", "visible");
    const from = new Date(start + slot * slotMs);
    readout.textContent = p ? tip(p) : `${clock(from, withDay)}: nothing finished`;
  };
  svg.onpointermove = (event) => {
    const box = svg.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * W;
    const slot = Math.floor((x - PAD.left) / slotW);
    show(slot >= 0 && slot < slots ? slot : null);
  };
  svg.onpointerleave = () => show(null);
  // by keyboard: the chart takes focus, the arrow keys move between the slots that have values
  svg.setAttribute("tabindex", "0");
  svg.setAttribute("aria-label", `${name}: use the left and right arrow keys to read each ${slotMs > 60_000 ? "hour" : "minute"}`);
  const filled = [...bySlot.keys()].sort((a, b) => a - b);
  svg.onkeydown = (event) => {
    if (!filled.length || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    event.preventDefault();
    const at = svg.dataset.slot === undefined ? filled.length : filled.indexOf(Number(svg.dataset.slot));
    const next = filled[Math.max(0, Math.min(filled.length - 1, at + (event.key === "ArrowRight" ? 1 : -1)))];
    svg.dataset.slot = String(next);
    show(next);
  };
  svg.onblur = () => { delete svg.dataset.slot; show(null); };
}
