"""Structured logs: one line per job state change and per request error, key=value or JSON."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The extra key/value pairs a log call attached."""
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=... logger=... msg="..." key=value ...` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = {"ts": _ts(record.created), "level": record.levelname.lower(), "logger": record.name,
                 "msg": record.getMessage(), **fields_of(record)}
        line = " ".join(f"{k}={_quote(v)}" for k, v in parts.items() if v is not None)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {"ts": _ts(record.created), "level": record.levelname.lower(), "logger": record.name,
                   "msg": record.getMessage(), **fields_of(record)}
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _ts(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


def safe_url(url: str) -> str:
    """A URL fit for logs: user:password@, the query string and the fragment removed (they carry secrets)."""
    cut = len(url)
    for mark in "?#":
        found = url.find(mark)
        if found != -1:
            cut = min(cut, found)
    scheme, sep, rest = url[:cut].partition("://")
    if not sep:
        scheme, rest = "", scheme
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Route every logger through one handler with the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def announce(message: str, level: int = logging.INFO, stream: TextIO | None = None, **fields: Any) -> None:
    """Print a start-up message in the configured format, whatever the log level.

    With the text format it is the plain line `jobqueue: <message>` (`jobqueue: WARNING: <message>` from
    WARNING up); with `--log-format=json` it is one JSON object whose "msg" is `message`. It goes to
    `stream` (stdout for the line scripts wait for) or else to stderr with the other logs.
    """
    out = stream if stream is not None else sys.stderr
    formatter = next((h.formatter for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)),
                     None)
    if formatter is None:
        prefix = "jobqueue: WARNING: " if level >= logging.WARNING else "jobqueue: "
        print(prefix + message, file=out, flush=True)
        return
    logger = logging.getLogger("jobqueue")
    record = logger.makeRecord(logger.name, level, __file__, 0, message, (), None, extra=fields or None)
    print(formatter.format(record), file=out, flush=True)
