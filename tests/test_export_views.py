"""Readable views in the JSON Lines export: `with=` and a job's `formats` put markdown, text, links and
metadata on its line (main content only, read through ReadableViews); a binary body says not_html there."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue.errors import BadRequest
from jobqueue.export import encoder_for, parse_with, walk
from jobqueue.export.views import asked_of
from jobqueue.extract import ExtractPool
from jobqueue.extract.pool import stop_helpers
from jobqueue.models import Task
from jobqueue.readable import ReadableViews
from jobqueue.store.base import TaskFilter
from tests.readable_site import PNG, Site, corpus, expected, readable_text, site  # noqa: F401 (the fixture)


@pytest.fixture(autouse=True, scope="module")
def helpers_stopped() -> Iterator[None]:
    """The extraction pool's forkserver is gone after these tests."""
    yield
    stop_helpers()


async def exported(store: Any, readable: ReadableViews, with_views: str | None) -> dict[str, dict[str, Any]]:
    """The JSON Lines export as the handler streams it, decoded and keyed by the job's URL path."""
    encoder = encoder_for("jsonl", "x", "jobqueue-test", "", with_views)
    lines = [encoder.encode(item) async for item in
             walk(store, TaskFilter(), encoder.with_body, views=readable, wanted=encoder.views)]
    decoded = [json.loads(line) for line in lines]
    assert all(line.endswith(b"}\n") and line.count(b"\n") == 1 for line in lines)
    return {entry["task"]["url"].rsplit("/", 1)[1]: entry for entry in decoded}


@pytest.mark.gen_test(timeout=90)
async def test_with_puts_the_asked_views_beside_the_body_and_a_binary_body_says_not_html(jq: Any, api: Any,
                                                                                          site: Site) -> None:  # noqa: F811
    article = await api.submit(site.url("/article"))
    png = await api.submit(site.url("/png"))
    for task in (article, png):
        assert (await api.wait_finished(task["id"]))["status"] == "completed"
    pool = ExtractPool(workers=1, timeout=20)
    readable = ReadableViews(jq.service.store, pool)
    try:
        lines = await exported(jq.service.store, readable, "markdown,links")
        line = lines["article"]
        assert list(line) == ["task", "result", "markdown", "links", "body_base64"]
        for sentence in expected()["keep"]:
            assert sentence in readable_text(line["markdown"])
        for sentence in expected()["drop"]:
            assert sentence not in line["markdown"]
        assert line["links"] and all(link["url"].startswith("http") for link in line["links"])
        assert base64.b64decode(line["body_base64"]) == corpus("article.html")
        assert lines["png"]["markdown"] is None and lines["png"]["links"] is None
        assert lines["png"]["views_error"]["code"] == "not_html"
        assert base64.b64decode(lines["png"]["body_base64"]) == PNG

        everything = await exported(jq.service.store, readable, "all")
        assert list(everything["article"])[2:] == ["markdown", "text", "links", "metadata", "body_base64"]
        assert everything["article"]["metadata"]["title"]
        assert everything["article"]["markdown"] == line["markdown"]  # the stored views, not a new extraction
        assert readable.extractions == 1

        plain = await exported(jq.service.store, readable, None)
        assert list(plain["article"]) == ["task", "result", "body_base64"]
    finally:
        pool.close()


def test_with_names_views_and_only_json_lines_carries_them() -> None:
    assert parse_with(None) == parse_with("") == ()
    assert parse_with("links,markdown") == ("markdown", "links")  # always in one order
    with pytest.raises(BadRequest, match="not ' markdown'"):  # exactly as /openapi.json says: no spaces
        parse_with("links, markdown")
    assert parse_with("all") == ("markdown", "text", "links", "metadata")
    with pytest.raises(BadRequest, match="not 'html'"):
        parse_with("markdown,html")
    with pytest.raises(BadRequest, match="format=jsonl only"):
        encoder_for("csv", "x", "ua", "", "markdown")
    with pytest.raises(BadRequest, match="format must be one of"):
        encoder_for("xml", "x", "ua", "", "markdown")
    assert encoder_for("warc", "x", "ua", "", "").views is None
    assert encoder_for(None, "x", "ua", "", "text").views == ("text",)


def test_a_jobs_own_formats_add_to_what_the_export_asks() -> None:
    task = Task(id="t", url="http://127.0.0.1/", host="127.0.0.1", status="completed", attempts=1,
                created_at=0.0, updated_at=0.0)
    assert asked_of(task, ("text",)) == ("text",)  # a task without `formats` asks for nothing itself
    setattr(task, "formats", ("metadata", "markdown"))  # noqa: B010  # whether or not Task declares the field
    assert asked_of(task, ("text",)) == ("markdown", "text", "metadata")
    assert asked_of(task, ()) == ("markdown", "metadata")
