"""`jobqueue export --with markdown,...` against a real server: the views on every JSON Lines line, beside the
body; a binary body's line says not_html; a job's own `formats` are carried without asking; the Python
client's export(views=...); --with refused with CSV and for an unknown view."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from jobqueue.client import AsyncClient
from tests.readable_site import PNG, Site, corpus, site  # noqa: F401 (the fixture)
from tests.test_cli import run_cli
from tests.test_client_readable import assert_main_content, completed


@pytest.mark.gen_test(timeout=120)
async def test_export_with_puts_the_views_on_every_line(jq: Any, site: Site, tmp_path: Any) -> None:  # noqa: F811
    server = f"http://127.0.0.1:{jq.port}"
    async with AsyncClient(server) as client:
        article, png = await completed(client, site.url("/article"), site.url("/png"))
    path = tmp_path / "views.jsonl"
    code, _, err = await run_cli("export", "--with", "markdown,metadata", "-o", str(path), "--server", server)
    assert code == 0, err
    lines = {json.loads(line)["task"]["id"]: json.loads(line) for line in path.read_text().splitlines()}
    assert list(lines[article])[2:] == ["markdown", "metadata", "body_base64"]
    assert_main_content(lines[article]["markdown"])
    assert lines[article]["metadata"]["title"]
    assert base64.b64decode(lines[article]["body_base64"]) == corpus("article.html")
    assert lines[png]["markdown"] is None and lines[png]["views_error"]["code"] == "not_html"
    assert base64.b64decode(lines[png]["body_base64"]) == PNG

    code, _, err = await run_cli("export", "--format", "csv", "--with", "markdown", "--server", server)
    assert code == 2 and "--with" in err
    code, _, err = await run_cli("export", "--with", "html", "--server", server)
    assert code == 2 and "'html' is not one of markdown, text, links, metadata or all" in err


@pytest.mark.gen_test(timeout=120)
async def test_a_jobs_own_formats_are_carried_without_asking(jq: Any, site: Site, tmp_path: Any) -> None:  # noqa: F811
    async with AsyncClient(f"http://127.0.0.1:{jq.port}") as client:
        own = (await client.submit(site.url("/article"), formats=["links"])).id
        plain = (await client.submit(site.url("/article") + "?plain")).id
        for task_id in (own, plain):
            assert (await client.wait(task_id, timeout=20)).status == "completed"
        await client.export(tmp_path / "own.jsonl")
        lines = {json.loads(line)["task"]["id"]: json.loads(line) for line in (tmp_path / "own.jsonl").open()}
        assert list(lines[own])[2:] == ["links", "body_base64"] and lines[own]["links"]
        assert list(lines[plain])[2:] == ["body_base64"]
        await client.export(tmp_path / "text.jsonl", views=["text"])
        lines = {json.loads(line)["task"]["id"]: json.loads(line) for line in (tmp_path / "text.jsonl").open()}
        assert list(lines[own])[2:] == ["text", "links", "body_base64"]
        assert list(lines[plain])[2:] == ["text", "body_base64"]
        assert "took with them seven of the nine bridges" in " ".join(lines[plain]["text"].split())
