"""The crawl commands of `jobqueue` against a real server and a real link graph on 127.0.0.1 (tests/crawl_site.py):
crawl --wait with its progress and exit status, crawls, crawl-cancel, Ctrl-C, export --crawl, and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobqueue.client import AsyncClient, Crawl
from tests.crawl_site import CrawlSite
from tests.helpers import drain_pty, wait_for
from tests.test_cli import ROOT, run_cli

DEPTH_1 = 7  # the site's pages one link from /: /, /a, /b, /c, /docs/, /item?id=1, /item?id=2
REFUSED = "http://127.0.0.1:9/"  # nothing listens there: the page fails


@pytest.fixture
def make_site() -> Iterator[Callable[..., CrawlSite]]:
    """Start link-graph sites on the test's loop (slow=True: pages other than / wait for `release`)."""
    made: list[CrawlSite] = []

    def start(**options: Any) -> CrawlSite:
        site = CrawlSite(**options)
        made.append(site)
        return site

    yield start
    for site in made:
        site.stop()


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_") or k == "JOBQUEUE_TEST_SESSION"}


def _ctrl_c_reaches_it() -> None:
    """In the CLI's process before it starts: SIGINT as a terminal's foreground job gets it. A test run started in
    the background (`cmd &` in a script) ignores SIGINT, its children inherit that, and the CLI rightly keeps
    ignoring a SIGINT its parent chose to ignore."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobqueue", *args, cwd=ROOT, env=environment(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=_ctrl_c_reaches_it)


async def ended(process: asyncio.subprocess.Process, seconds: float, what: str) -> tuple[bytes, bytes]:
    """The output of a CLI process once it exits; killed (and what it said so far shown) if it has not within
    `seconds`, so a hung CLI fails its own test and leaves no process or pipe behind for later tests."""
    waiting = asyncio.ensure_future(process.communicate())
    done, _ = await asyncio.wait([waiting], timeout=seconds)
    if done:
        return waiting.result()
    process.kill()
    out, err = await waiting
    raise AssertionError(f"the CLI did not exit within {seconds:g} s of {what}; stdout {out[-2000:]!r}, "
                         f"stderr {err[-2000:]!r}")


async def seed_done(client: AsyncClient, crawl_id: str) -> Crawl:
    """Wait until a slow site's seed page completed and its links are queued (they wait for the site)."""
    async def probe() -> Crawl | None:
        now = await client.get_crawl(crawl_id)
        return now if now.counts.get("completed") == 1 and now.discovered > 1 else None

    found: Crawl = await wait_for(probe, 20, f"crawl {crawl_id}'s seed page to complete")
    return found


@pytest.mark.gen_test(timeout=90)
async def test_crawl_wait_shows_discovered_done_and_skipped_then_lists_and_exports(jq: Any, make_site: Any) -> None:
    site = make_site()
    server = f"http://127.0.0.1:{jq.port}"
    code, out, err = await run_cli("crawl", site.url("/"), "--max-depth", "1", "--sitemap", "skip", "--tag", "cli",
                                   "--wait", "--server", server)
    assert code == 0, err
    crawl_id, summary = out.splitlines()
    assert summary.startswith(f"crawl {crawl_id} finished: {DEPTH_1} pages, {DEPTH_1} completed, 0 failed, "
                              "0 cancelled; skipped 1 robots, ")
    assert f"jobqueue: crawling from {site.url('/')} as crawl {crawl_id}; `jobqueue crawl-cancel {crawl_id}`" in err
    progress = [line for line in err.splitlines() if " done, " in line]
    assert progress[-1].startswith(f"jobqueue: {DEPTH_1}/{DEPTH_1} done, 0 failed, "), progress
    assert f"/s, {DEPTH_1} discovered, skipped 1 robots, " in progress[-1] and " duplicate, " in progress[-1]
    async with AsyncClient(server) as client:
        crawl = await client.get_crawl(crawl_id)
        page = await client.transport.call("GET", "queue_tasks", query={"crawl": crawl_id, "limit": 50})
    assert (crawl.tags, crawl.max_depth, crawl.sitemap) == (("cli",), 1, "skip")
    assert len(page["tasks"]) == DEPTH_1 and all(t["tags"] == ["cli"] for t in page["tasks"])

    code, out, err = await run_cli("crawl", site.url("/a"), REFUSED, "--max-depth", "0", "--sitemap", "skip",
                                   "--ignore-robots", "--wait", "--json", "--server", server)
    assert code == 1, err  # a page failed
    failing = json.loads(out)["crawl"]
    assert failing["status"] == "finished" and failing["robots"] == "ignore" and failing["seeds"] == [
        site.url("/a"), REFUSED]
    assert failing["counts"]["completed"] == 1 and failing["counts"]["failed"] == 1

    code, out, _ = await run_cli("crawls", "--server", server)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and lines[0].startswith(f"crawl {failing['id']}: finished, 2/2 pages done")
    assert lines[1].startswith(f"crawl {crawl_id}: finished, {DEPTH_1}/{DEPTH_1} pages done (")
    assert lines[1].endswith(f"from {site.url('/')}") and f"from {site.url('/a')} (and 1 more)" in lines[0]
    code, out, _ = await run_cli("crawls", "--limit", "1", "--json", "--server", server)
    assert code == 0 and [c["id"] for c in json.loads(out)["crawls"]] == [failing["id"]]
    code, out, _ = await run_cli("crawls", crawl_id, "--json", "--server", server)
    assert code == 0 and json.loads(out)["crawl"]["discovered"] == DEPTH_1
    code, out, _ = await run_cli("export", "--crawl", crawl_id, "-o", "-", "--server", server)
    assert code == 0 and {json.loads(line)["task"]["crawl_id"] for line in out.splitlines()} == {crawl_id}
    assert len(out.splitlines()) == DEPTH_1


@pytest.mark.gen_test(timeout=90)
async def test_ctrl_c_leaves_the_crawl_running_and_crawl_cancel_stops_it(jq: Any, make_site: Any) -> None:
    site = make_site(slow=True)
    server = f"http://127.0.0.1:{jq.port}"
    async with AsyncClient(server) as client:
        follower = await start_cli("crawl", site.url("/"), "--sitemap", "skip", "--wait", "--server", server)
        assert follower.stdout is not None
        crawl_id = (await asyncio.wait_for(follower.stdout.readline(), 20)).decode().strip()
        await seed_done(client, crawl_id)
        follower.send_signal(signal.SIGINT)
        _, said = await ended(follower, 20, "its SIGINT")
        assert follower.returncode == 130, said
        assert said.decode().splitlines()[-1] == ("jobqueue: interrupted; the crawl goes on (`jobqueue crawls ID` "
                                                 "shows it, `jobqueue crawl-cancel ID` stops it)")
        assert (await client.get_crawl(crawl_id)).status == "running"
        code, out, _ = await run_cli("crawl-cancel", crawl_id, "--json", "--server", server)
        assert code == 0 and json.loads(out)["crawl"]["status"] == "cancelled"
        site.release.set()  # its fetches end, so the next crawl of this host has its slots
        assert (await client.get_crawl(crawl_id)).counts["completed"] == 1  # its finished page stays

        other_site = make_site(slow=True)
        waiter = await start_cli("crawl", other_site.url("/"), "--sitemap", "skip", "--wait", "--server", server)
        assert waiter.stdout is not None
        other_id = (await asyncio.wait_for(waiter.stdout.readline(), 20)).decode().strip()
        await seed_done(client, other_id)
        code, out, err = await run_cli("crawl-cancel", other_id, "--server", server)
        assert code == 0 and out.startswith(f"crawl {other_id}: cancelled, {DEPTH_1}/{DEPTH_1} pages done ("), err
        rest, err_bytes = await ended(waiter, 20, "its crawl's cancel")
        assert waiter.returncode == 1, err_bytes  # followed to its end: cancelled
        assert rest.decode().startswith(f"crawl {other_id} cancelled: {DEPTH_1} pages, 1 completed, 0 failed, "
                                        f"{DEPTH_1 - 1} cancelled; ")


@pytest.mark.gen_test(timeout=60)
async def test_bad_crawl_input_is_one_sentence_and_exit_2(jq: Any, make_site: Any) -> None:
    site = make_site()
    server = f"http://127.0.0.1:{jq.port}"
    refused = "the server refused the crawl: "
    cases = {
        "max pages": (["crawl", site.url("/"), "--max-pages", "0"],
                      refused + "max_pages: must be a whole number from 1 to 1000000"),
        "pattern": (["crawl", site.url("/"), "--include", "("],
                    refused + "include[0]: not a valid regular expression (missing ), unterminated subpattern at "
                              "position 0); it is searched in the URL's path and query, like /docs/ or \\.pdf$"),
        "scope": (["crawl", site.url("/"), "--scope", "planet"],
                  "argument --scope: invalid choice: 'planet' (choose from 'host', 'domain', 'prefix'); see "
                  "`jobqueue crawl --help`"),
        "no url": (["crawl"], "the following arguments are required: URL; see `jobqueue crawl --help`"),
        "depth": (["crawl", site.url("/"), "--max-depth", "two"],
                  "argument --max-depth: invalid int value: 'two'; see `jobqueue crawl --help`"),
        "unknown crawl": (["crawls", "nosuchcrawl"], f"no crawl has the id 'nosuchcrawl' on {server}"),
        "unknown cancel": (["crawl-cancel", "nosuchcrawl"], f"no crawl has the id 'nosuchcrawl' on {server}"),
    }
    for name, (args, expected) in cases.items():
        code, out, err = await run_cli(*args, "--server", server)
        assert (code, out, err) == (2, "", f"jobqueue: {expected}\n"), name
    code, out, err = await run_cli("crawl", "htp://x/", "--server", server)
    assert code == 2 and out == "" and err.startswith(f"jobqueue: {refused}") and "'htp'" in err
    assert len(err.splitlines()) == 1
    code, out, err = await run_cli("crawls", "--server", server)
    assert (code, out, err) == (0, "", f"jobqueue: no crawls on {server}\n")  # nothing was started


@pytest.mark.gen_test(timeout=60)
async def test_a_terminal_gets_a_live_crawl_bar(jq: Any, make_site: Any) -> None:
    site = make_site()
    leader, follower = pty.openpty()
    environ = {**environment(), "COLUMNS": "160", "TERM": "xterm"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobqueue", "crawl", site.url("/"), "--max-depth", "1", "--sitemap", "skip", "--wait",
        "--server", f"http://127.0.0.1:{jq.port}", cwd=ROOT, env=environ, stdout=asyncio.subprocess.PIPE,
        stderr=follower)
    os.close(follower)
    out, _ = await asyncio.wait_for(process.communicate(), 40)
    screen = drain_pty(leader)
    assert process.returncode == 0
    text = screen.decode(errors="replace")
    assert "crawling" in text and "━" in text and f"{DEPTH_1}/{DEPTH_1}" in text and "0 failed" in text
    assert f"{DEPTH_1} discovered, skipped 1 robots" in text
    assert f"finished: {DEPTH_1} pages, {DEPTH_1} completed" in out.decode()
