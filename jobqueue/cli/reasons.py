"""What a terminal may be shown of a page, and a batch's failures counted by reason."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from jobqueue.client import AsyncClient

# Control characters other than tab and newline: a binary body decoded as text is full of them, and some
# (escape above all) would drive the terminal instead of being shown.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
PAGE = 1000
MOST = 10_000  # jobs read per kind of failure; past that the count says "at least"


def for_terminal(text: str) -> str:
    """Text as a terminal may show it: control characters written as \\xNN, and a body that is mostly
    such characters (bytes, not text) replaced by one line saying so."""
    controls = len(_CONTROL.findall(text))
    if text and controls > max(8, len(text) // 20):
        return (f"[{len(text)} characters, {controls} of them control characters: a binary body, not shown on a "
                "terminal; redirect the output to a file to keep it]\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


async def _tally(client: AsyncClient, batch_ids: list[str], query: dict[str, Any],
                 key: Any) -> tuple[Counter[str], bool]:
    """Count the batches' jobs matching `query` by `key(task)`; True when more than MOST were left uncounted."""
    counts: Counter[str] = Counter()
    for batch_id in batch_ids:
        cursor = None
        while True:
            page = await client.transport.call("GET", "queue_tasks", query={
                **query, "batch": batch_id, "limit": PAGE, **({"cursor": cursor} if cursor else {})})
            counts.update(key(task) for task in page["tasks"])
            cursor = page.get("next")
            if not cursor:
                break
            if sum(counts.values()) >= MOST:
                return counts, True
    return counts, False


async def failure_reasons(client: AsyncClient, batch_ids: list[str]) -> list[str]:
    """Lines for the end of a batch: failures by error code, and completed jobs whose answer was an HTTP error
    by class ("completed, HTTP 4xx: 3 (404 2, 410 1)"), since a 404 is a completed fetch, not a failure."""
    lines = []
    failed, more = await _tally(client, batch_ids, {"status": "failed"},
                                lambda t: (t.get("error") or {}).get("code") or "unknown")
    if failed:
        reasons = ", ".join(f"{code} {n}" for code, n in failed.most_common())
        lines.append(f"failed by reason{' (the first ' + str(MOST) + ')' if more else ''}: {reasons}")
    for klass in ("4xx", "5xx"):
        codes, more = await _tally(client, batch_ids, {"status": "completed", "http_status": klass},
                                   lambda t: str(t.get("http_status")))
        if codes:
            detail = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
            lines.append(f"completed, HTTP {klass}: {'at least ' if more else ''}{sum(codes.values())} ({detail})")
    return lines
