"""Two servers in one process (as tests run them) share multiprocessing's forkserver: stopping one leaves the
other's extraction working, stopping the last stops the helpers, and no process is left."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from server import JobQueueServer
from tests.conftest import test_settings as settings_for
from tests.crawl_site import CrawlSite
from tests.helpers import Api


@pytest.fixture
def site(io_loop) -> Iterator[CrawlSite]:
    served = CrawlSite()
    yield served
    served.stop()


def children() -> list[str]:
    """The command lines of this process's live children (the forkserver and the resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) != os.getpid():
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                found.append(cmdline.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return found


async def scrape(server: JobQueueServer, url: str) -> str:
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("POST", "/v2/scrape", {"url": url, "formats": ["markdown"]})
    finally:
        api.close()
    assert code == 200, body
    return body["data"]["markdown"]


@pytest.mark.gen_test(timeout=60)
async def test_stopping_one_server_leaves_the_others_extraction_and_the_last_stops_the_helpers(tmp_path, site):
    first = JobQueueServer(settings_for(tmp_path, database=f"sqlite:///{tmp_path}/first.db"))
    second = JobQueueServer(settings_for(tmp_path, database=f"sqlite:///{tmp_path}/second.db"))
    running: list[JobQueueServer] = []
    try:
        for server in (first, second):
            await server.start()
            running.append(server)
        assert (await scrape(first, site.url("/a"))).startswith("a\n")
        assert (await scrape(second, site.url("/b"))).startswith("b\n")
        assert any("multiprocessing.forkserver" in c for c in children())
        running.remove(first)
        await asyncio.wait_for(first.stop(), 20)  # hung in the forkserver's waitpid when it stopped it
        assert (await scrape(second, site.url("/c"))).startswith("c\n")
    finally:
        for server in running:
            await asyncio.wait_for(server.stop(), 20)
    assert [c for c in children() if "multiprocessing" in c] == []
