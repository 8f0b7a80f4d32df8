// The job view's Markdown tab: the page's main content as Markdown (GET /results/:id/markdown), or the whole
// page; shown as text, never as HTML, so nothing of the fetched page runs or loads here.

import { readable } from "./api.js";
import { el } from "./format.js";

let made = 0;  // unique ids when the job view is rebuilt

export class MarkdownView {
  constructor(id) {
    this.id = id;
    this.loaded = null;  // the main_content value shown (or being fetched); null: nothing yet
    const checkId = `markdown-whole-${++made}`;
    this.whole = el("input", { type: "checkbox", id: checkId });
    this.whole.addEventListener("change", () => this.load());
    this.status = el("p", { class: "muted", role: "status" });
    // in the page only once there is Markdown to show: the job view's other <pre> stays the only one until then
    this.text = el("pre", { class: "markdown", tabindex: "0", "aria-label": "the page as Markdown" });
    this.root = el("div", { class: "readable" },
      el("p", { class: "row" }, this.whole,
        el("label", { for: checkId, text: "Whole page (navigation, headers and footers kept)" })),
      this.status);
  }

  // Fetches the Markdown the first time the tab is shown, and again when the checkbox changes.
  async load() {
    const mainContent = !this.whole.checked;
    if (this.loaded === mainContent) return;
    this.loaded = mainContent;
    this.status.textContent = "Loading…";
    this.text.hidden = true;
    const answer = await readable(this.id, "markdown", mainContent ? {} : { main_content: "false" });
    if (this.loaded !== mainContent) return;  // the checkbox changed while this was on its way
    if (answer.status === 200) {
      this.status.textContent = answer.text.trim() ? "" : "The page has no text.";
      this.text.textContent = answer.text;
      this.text.hidden = !answer.text.trim();
      if (!this.text.isConnected) this.root.append(this.text);
      return;
    }
    this.loaded = null;  // an error is not kept: showing the tab again asks again
    this.status.textContent = answer.error?.code === "not_html"
      ? "No readable text: the body is not HTML or text."
      : `The Markdown cannot be shown: ${answer.error?.message || `HTTP ${answer.status}`}`;
  }
}
