"""Readable content through the Python client and the `jobqueue` command, against a real server: a result's
markdown(), text() and links() (blocking and asyncio), not_html as APIError, and `jobqueue result ID --markdown`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobqueue.client import APIError, AsyncClient, Client, JobQueueError, Result
from tests.readable_site import PNG, Site, corpus, expected, readable_text, site  # noqa: F401 (the fixture)
from tests.test_cli import run_cli


async def completed(client: AsyncClient, *urls: str) -> list[str]:
    """Submit the URLs and wait for each to complete; their job ids."""
    ids = [(await client.submit(url)).id for url in urls]
    for task_id in ids:
        assert (await client.wait(task_id, timeout=20)).status == "completed"
    return ids


def assert_main_content(markdown: str) -> None:
    folded = readable_text(markdown)
    for sentence in expected()["keep"]:
        assert sentence in folded
    for sentence in expected()["drop"]:
        assert sentence not in folded


@pytest.mark.gen_test(timeout=90)
async def test_a_results_views_through_the_asyncio_client(jq: Any, site: Site) -> None:  # noqa: F811
    async with AsyncClient(f"http://127.0.0.1:{jq.port}") as client:
        article, png = await completed(client, site.url("/article"), site.url("/png"))
        result = await client.result(article)
        assert result.metadata["title"]
        assert_main_content(await result.markdown())
        whole = await result.markdown(main_content=False)
        assert "Sign up for our morning newsletter" in readable_text(whole)
        text = await result.text()
        assert "took with them seven of the nine bridges" in readable_text(text) and "#" not in text.split()[0]
        links = await result.links()
        assert links and {"url", "text"} <= set(links[0]) and all(link["url"].startswith("http") for link in links)
        assert await client.markdown(article) == await result.markdown()
        binary = await client.result(png)
        assert binary.metadata == {}
        for call in (binary.markdown, binary.text):
            with pytest.raises(APIError) as refused:
                await call()
            assert refused.value.status == 415 and refused.value.code == "not_html"
        with pytest.raises(APIError) as missing:
            await client.markdown("0" * 32)
        assert missing.value.status in (400, 404)
    with pytest.raises(JobQueueError, match="not read by a client"):
        Result.from_json(result.raw).markdown()


@pytest.mark.gen_test(timeout=90)
async def test_a_results_views_through_the_blocking_client(jq: Any, site: Site) -> None:  # noqa: F811
    server = f"http://127.0.0.1:{jq.port}"
    async with AsyncClient(server) as client:
        article, png = await completed(client, site.url("/article"), site.url("/png"))

    def blocking() -> tuple[str, str, list[dict[str, str]], str]:
        with Client(server) as jq_client:
            result = jq_client.result(article)
            try:
                jq_client.result(png).markdown()
            except APIError as exc:
                refused = exc.code
            return result.markdown(), result.text(), result.links(), refused

    markdown, text, links, refused = await asyncio.get_running_loop().run_in_executor(None, blocking)
    assert_main_content(markdown)
    assert "pooled their reconstruction grants" in readable_text(text)
    assert links and refused == "not_html"


@pytest.mark.gen_test(timeout=120)
async def test_the_command_prints_a_pages_markdown_text_or_links(jq: Any, site: Site) -> None:  # noqa: F811
    server = f"http://127.0.0.1:{jq.port}"
    async with AsyncClient(server) as client:
        article, png = await completed(client, site.url("/article"), site.url("/png"))
    code, out, err = await run_cli("result", article, "--markdown", "--server", server)
    assert code == 0, err
    assert_main_content(out)
    code, out, err = await run_cli("result", article, "--links", "--server", server)
    assert code == 0 and out.splitlines() and all(line.startswith("http") for line in out.splitlines()), err
    code, out, err = await run_cli("result", png, "--text", "--server", server)
    assert code == 2 and "not_html" in err and out == ""
