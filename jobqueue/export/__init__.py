"""Exports of the task list (JSON Lines, CSV, WARC): one encoder per format over one shared paging walk."""

from __future__ import annotations

from jobqueue.errors import BadRequest
from jobqueue.export.csv_format import CsvEncoder
from jobqueue.export.jsonl import JsonlEncoder
from jobqueue.export.walk import Encoder, ExportItem, walk
from jobqueue.export.warc_format import WarcEncoder

__all__ = ["FORMATS", "Encoder", "ExportItem", "encoder_for", "walk"]

FORMATS = ("jsonl", "csv", "warc")


def encoder_for(name: str | None, filename_stem: str, user_agent: str, query: str) -> Encoder:
    """The encoder of a format named in a request (absent: jsonl); an unknown name is a 400 saying the choices."""
    if name is None or name == "jsonl":
        return JsonlEncoder()
    if name == "csv":
        return CsvEncoder()
    if name == "warc":
        return WarcEncoder(f"{filename_stem}.{WarcEncoder.extension}", user_agent, query)
    raise BadRequest("invalid_format", f"format must be one of {', '.join(FORMATS)} (leave it out for jsonl)")
