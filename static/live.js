// The live link: a websocket that reconnects by itself and shows its state.

import { eventsUrl } from "./api.js";

export class LiveLink {
  constructor(indicator, { onHello, onTask, onCounts, onResync, onBatch = () => {}, onCrawl = () => {},
    onStats = () => {}, onDeleted = () => {}, onState = () => {} }) {
    this.indicator = indicator;
    this.handlers = { onHello, onTask, onCounts, onResync, onBatch, onCrawl, onStats, onDeleted, onState };
    this.delay = 500;
    this.socket = null;
  }

  start() {
    this.setState("connecting", "connecting…");
    const socket = new WebSocket(eventsUrl());
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => this.retry());
    socket.addEventListener("error", () => socket.close());
  }

  receive(data) {
    let message;
    try { message = JSON.parse(data); } catch { return; }
    this.handle(message);
  }

  handle(message) {
    if (message.type === "batch") {
      for (const inner of message.messages) this.handle(inner);
    } else if (message.type === "hello") {
      this.delay = 500;
      this.setState("live", "live");
      if (this.view) this.sendView(this.view);
      this.handlers.onHello();
    } else if (message.type === "task") {
      this.handlers.onTask(message.task);
    } else if (message.type === "counts") {
      this.handlers.onCounts(message.counts);
    } else if ((message.type === "batch.progress" || message.type === "batch.finished") && message.batch) {
      this.handlers.onBatch(message.batch);
    } else if ((message.type === "crawl.progress" || message.type === "crawl.finished") && message.crawl) {
      this.handlers.onCrawl(message.crawl);
    } else if (message.type === "url.changed" && message.task) {
      this.handlers.onTask(message.task);  // a recurring run whose page changed: its History tab gains it
    } else if (message.type === "task.deleted") {
      this.handlers.onDeleted(message.task_id);
    } else if (message.type === "stats") {
      this.handlers.onStats(message);
    } else if (message.type === "resync") {
      this.handlers.onResync();
    }
  }

  // Tell the server what this page shows, so it sends only that (resent after every reconnect).
  sendView(view) {
    this.view = view;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "view", ...view }));
    }
  }

  retry() {
    const seconds = Math.round(this.delay / 100) / 10;
    this.setState("down", `live link down — reconnecting in ${seconds}s`);
    setTimeout(() => this.start(), this.delay);
    this.delay = Math.min(this.delay * 2, 15000);
  }

  setState(state, text) {
    if (this.indicator.dataset.state !== state) this.handlers.onState(state);
    this.indicator.dataset.state = state;
    this.indicator.textContent = text;
  }
}
