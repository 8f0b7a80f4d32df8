"""JSON Lines export: one object per job with the task, the result's metadata, its readable views when asked,
and the body in base64."""

from __future__ import annotations

import base64
import json
from typing import Any

from jobqueue.export.walk import ExportItem


class JsonlEncoder:
    """`{"task": {...}, "result": {...} | null, "body_base64": "..." | null}` and a newline, per job; with
    views asked (`with=`, or the job's `formats`), `"markdown"`, `"text"`, `"links"`, `"metadata"` before
    the body."""

    media_type = "application/x-ndjson"
    extension = "jsonl"
    with_body = True

    def __init__(self, views: tuple[str, ...] = ()) -> None:
        self.views: tuple[str, ...] | None = views  # asked of every job, beside each job's own `formats`

    def begin(self) -> bytes:
        """Nothing: every line stands alone."""
        return b""

    def encode(self, item: ExportItem) -> bytes:
        """One line: the task as GET /queue_tasks/:id shows it, the result without its body, then the body."""
        result = item.result
        head: dict[str, Any] = {"task": item.task.to_json(), "result": result.to_json() if result is not None else None}
        if item.views:
            head.update(item.views)
        text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
        try:
            line = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in stored text: escaped, the line stays valid JSON
            line = json.dumps(head, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        body = result.body if result is not None else None
        if body is None:
            return line[:-1] + b',"body_base64":null}\n'
        # base64 needs no JSON escaping: appended as is, rather than scanned again by the JSON encoder
        return line[:-1] + b',"body_base64":"' + base64.b64encode(body) + b'"}\n'

    def end(self) -> bytes:
        """Nothing: a cut export is told apart by the connection closing without the end of the response."""
        return b""
