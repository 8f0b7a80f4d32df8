"""Exports of the task list (JSON Lines, CSV, WARC): one encoder per format over one shared paging walk."""

from __future__ import annotations

from jobqueue.errors import BadRequest
from jobqueue.export.csv_format import CsvEncoder
from jobqueue.export.jsonl import JsonlEncoder
from jobqueue.export.views import VIEWS, parse_with
from jobqueue.export.walk import Encoder, ExportItem, walk
from jobqueue.export.warc_format import WarcEncoder

__all__ = ["FORMATS", "VIEWS", "Encoder", "ExportItem", "encoder_for", "parse_with", "walk"]

FORMATS = ("jsonl", "csv", "warc")


def encoder_for(name: str | None, filename_stem: str, user_agent: str, query: str,
                with_views: str | None = None) -> Encoder:
    """The encoder of a format named in a request (absent: jsonl); an unknown name is a 400 saying the choices.
    `with_views` is the request's `with=` (readable views for every job), which only JSON Lines carries."""
    if name is not None and name not in FORMATS:
        raise BadRequest("invalid_format", f"format must be one of {', '.join(FORMATS)} (leave it out for jsonl)")
    views = parse_with(with_views)
    if name is None or name == "jsonl":
        return JsonlEncoder(views)
    if views:
        raise BadRequest("invalid_format", "with= (readable views) goes with format=jsonl only")
    if name == "csv":
        return CsvEncoder()
    return WarcEncoder(f"{filename_stem}.{WarcEncoder.extension}", user_agent, query)
