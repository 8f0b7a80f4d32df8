// Tabs as the WAI-ARIA Authoring Practices pattern: the tab list is one stop in the Tab order (roving
// tabindex); Left/Right (wrapping), Home and End move to a tab and select it; each panel is focusable.

import { el } from "./format.js";

let made = 0;  // ids stay unique when the job view is rebuilt while an older copy is still in the DOM

// `entries`: [{ key, name, panel }]; `onSelect(key)` runs after a tab is shown (also for the first one).
export function tabSet(label, entries, { selected, onSelect = () => {} }) {
  const prefix = `tabs${++made}`;
  const list = el("div", { role: "tablist", "aria-label": label, class: "tabs" });
  const tabs = entries.map(({ key, name, panel }) => {
    const tab = el("button", { type: "button", role: "tab", id: `${prefix}-${key}`, "aria-controls": `${prefix}-${key}-panel`,
      text: name });
    tab.dataset.key = key;
    panel.id = `${prefix}-${key}-panel`;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", tab.id);
    panel.tabIndex = 0;
    list.append(tab);
    return tab;
  });
  const panels = entries.map((entry) => entry.panel);

  function select(key, focus = false) {
    const index = Math.max(0, entries.findIndex((entry) => entry.key === key));
    tabs.forEach((tab, i) => {
      tab.setAttribute("aria-selected", String(i === index));
      tab.tabIndex = i === index ? 0 : -1;
      panels[i].hidden = i !== index;
    });
    if (focus) tabs[index].focus();
    onSelect(entries[index].key);
  }

  list.addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab) select(tab.dataset.key, true);
  });
  list.addEventListener("keydown", (event) => {
    const at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    const to = { ArrowRight: (at + 1) % tabs.length, ArrowLeft: (at - 1 + tabs.length) % tabs.length,
      Home: 0, End: tabs.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    select(entries[to].key, true);
  });
  select(selected);
  return { list, panels, select };
}
