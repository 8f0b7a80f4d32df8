"""CSV export: a header row, then one row per job, without bodies, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

from jobqueue.export.walk import ExportItem
from jobqueue.models import iso

COLUMNS = ("id", "url", "status", "http_status", "created_at", "finished_at", "final_url", "content_type", "size",
           "sha256", "error_code", "error_message", "attempts", "priority", "tags", "batch_id")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); such a cell gets a
# leading apostrophe, which spreadsheets hide and treat as "this is text".
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """A cell as written: text that a spreadsheet would run as a formula is prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class CsvEncoder:
    """RFC 4180 CSV in UTF-8 (no byte order mark), CRLF line ends; empty cells where a value is absent."""

    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    with_body = False
    views: tuple[str, ...] | None = None  # readable views are a JSON Lines matter

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def begin(self) -> bytes:
        """The header row."""
        return self._row(COLUMNS)

    def encode(self, item: ExportItem) -> bytes:
        """One job's row."""
        task, result = item.task, item.result
        error = task.error
        return self._row((
            task.id, task.url, task.status, task.http_status, iso(task.created_at), iso(task.finished_at),
            result.final_url if result else None, result.content_type if result else None,
            result.size if result else None, result.sha256 if result else None,
            error.code if error else None, error.message if error else None,
            task.attempts, task.priority, " ".join(task.tags), task.batch_id,
        ))

    def end(self) -> bytes:
        """Nothing: a cut export is told apart by the connection closing without the end of the response."""
        return b""

    def _row(self, cells: tuple[object, ...]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow([safe_cell(c) for c in cells])
        return self._buffer.getvalue().encode("utf-8", "replace")
