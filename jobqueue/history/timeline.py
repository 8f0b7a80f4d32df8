"""One URL's results over time, each marked changed or not against the one fetched before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobqueue.models import Result

STORAGE_FIGURES = ("results", "distinct_bodies", "body_bytes", "stored_bytes")


@dataclass
class HistoryEntry:
    """A result of the URL and whether its body differs from the next older result's (None: the oldest)."""

    result: Result
    changed: bool | None

    def to_json(self) -> dict[str, Any]:
        """The result's JSON (no body) with `changed`."""
        return {**self.result.to_json(), "changed": self.changed}


def mark_changes(rows: list[tuple[Result, str | None]], limit: int) -> list[HistoryEntry]:
    """Newest-first (result, body key) pairs, one more than the page when an older one exists, as entries."""
    entries = []
    for index, (result, key) in enumerate(rows[:limit]):
        older = rows[index + 1][1] if index + 1 < len(rows) else None
        has_older = index + 1 < len(rows)
        entries.append(HistoryEntry(result, (key != older) if has_older else None))
    return entries
