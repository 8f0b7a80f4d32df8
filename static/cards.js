// Phone width: tables become stacked cards (panels.css), one card a row, each cell on a line of its own
// under its column's name. CSS can only print a name it can read from the cell, so every cell of a table
// with a header row gets its column's name as `data-label`, as rows are added or rewritten (live updates
// replace cells), by one observer for the whole page.

const LABELLED = "table:not(.kv)";

function headerNames(table) {
  const row = table.tHead?.rows[0];
  return row ? [...row.cells].map((th) => th.textContent.replace(/\s+/g, " ").trim()) : null;
}

function label(table) {
  const names = headerNames(table);
  if (!names) return;
  table.classList.add("cards");
  for (const body of table.tBodies) {
    for (const tr of body.rows) {
      [...tr.cells].forEach((cell, i) => {
        if (cell.colSpan > 1) return;  // a row of its own (a delivery's details): no column to name
        if (names[i] !== undefined && cell.dataset.label !== names[i]) cell.dataset.label = names[i];
      });
    }
  }
}

// Label every table now, and again whenever rows or cells change anywhere in the page (once per frame).
export function labelTables(root = document.body) {
  let queued = new Set();
  const flush = () => {
    for (const table of queued) if (table.isConnected) label(table);
    queued = new Set();
  };
  for (const table of root.querySelectorAll(LABELLED)) label(table);
  new MutationObserver((changes) => {
    const before = queued.size;
    for (const change of changes) {
      const table = change.target.closest?.(LABELLED);
      if (table) queued.add(table);
      for (const node of change.addedNodes) {
        if (node.nodeType !== 1) continue;
        if (node.matches(LABELLED)) queued.add(node);
        for (const inner of node.querySelectorAll(LABELLED)) queued.add(inner);
      }
    }
    if (queued.size && !before) requestAnimationFrame(flush);
  }).observe(root, { childList: true, subtree: true });
}
