"""The render pool's throughput against its ceiling, a plain Playwright loop, on a local JS page.

`python3 dev.py bench render` (or `python3 bench/render_bench.py`) prints, for the pool with 1 and 2 browsers
(`--pages` each) and for one browser driven by a bare Playwright loop with as many pages at once: renders per
second, time to first render after start, and peak memory (PSS) of the browser processes. Then the flat-memory
run: `--flat` renders (default 200) through one browser recycled every `--recycle` renders (default 50), with
the peak PSS of each browser generation, so memory that outlives a recycle shows as a rising series.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobqueue.addresses import AddressPolicy  # noqa: E402
from jobqueue.render import RenderPool, RenderSettings, parse_render  # noqa: E402
from jobqueue.render.launch import find_chromium  # noqa: E402
from jobqueue.render.pool import memory_bytes  # noqa: E402
from tests.render_site import Site  # noqa: E402


class PeakRss:
    """Samples the summed PSS of some processes every 100 ms and keeps the highest."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.ensure_future(self._sample())
        return self

    async def __aexit__(self, *_exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, memory_bytes(self.pids()))
            await asyncio.sleep(0.1)


async def _drive(count: int, concurrency: int, render: Callable[[], Awaitable[Any]]) -> float:
    """Run `count` renders, `concurrency` at once; seconds taken."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            await render()

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - began


async def measure_pool(site: Site, chromium: str, browsers: int, pages: int, renders: int) -> dict[str, Any]:
    """The pool, guard proxy included."""
    began = time.monotonic()
    pool = RenderPool(RenderSettings(browsers=browsers, pages=pages, chromium=chromium),
                      AddressPolicy.build(False, ["127.0.0.1/32"]))
    await pool.start()
    options = parse_render(True)
    url = site.url("/js")
    await pool.render(url, options)
    first = time.monotonic() - began
    try:
        async with PeakRss(lambda: [p for p in pool.processes() if not _is_node(p)]) as rss:
            seconds = await _drive(renders, browsers * pages, lambda: pool.render(url, options))
    finally:
        await pool.stop()
    return {"renders_per_s": round(renders / seconds, 2), "first_render_s": round(first, 2),
            "peak_browser_pss_mb": round(rss.peak / 2**20, 1)}


async def measure_plain(site: Site, chromium: str, pages: int, renders: int) -> dict[str, Any]:
    """The ceiling: one browser, a fresh context per render, `pages` at once, no proxy, no pool."""
    from playwright.async_api import async_playwright

    url = site.url("/js")
    began = time.monotonic()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium)

        async def render() -> None:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(url)
            await page.content()
            await context.close()

        await render()
        first = time.monotonic() - began
        async with PeakRss(lambda: _chromium_children(os.getpid())) as rss:
            seconds = await _drive(renders, pages, render)
        await browser.close()
    return {"renders_per_s": round(renders / seconds, 2), "first_render_s": round(first, 2),
            "peak_browser_pss_mb": round(rss.peak / 2**20, 1)}


def _is_node(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().startswith("node")
    except OSError:
        return True


def _chromium_children(root: int) -> list[int]:
    """Every chromium process descended from `root` (through Playwright's driver)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    text = handle.read()
            except OSError:
                continue
            names[int(entry)] = text[text.index("(") + 1:text.rindex(")")]
            parents[int(entry)] = int(text.rsplit(")", 1)[1].split()[1])
    found = []
    for pid in parents:
        ancestor = parents.get(pid, 0)
        while ancestor > 1 and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root and names[pid] not in ("node", "node-MainThread"):
            found.append(pid)
    return found


async def measure_flat(site: Site, chromium: str, pages: int, renders: int, recycle: int) -> dict[str, Any]:
    """`renders` renders through one browser recycled every `recycle`: the peak PSS of each generation.

    A sampler reads the pool's memory every 100 ms and files each sample under the browser pid serving then
    (none while a retired browser closes), so a generation's peak is its own and a leak across recycles (stray
    processes, a growing proxy or profile) shows as a rising series rather than a sawtooth."""
    pool = RenderPool(RenderSettings(browsers=1, pages=pages, recycle=recycle, chromium=chromium),
                      AddressPolicy.build(False, ["127.0.0.1/32"]))
    await pool.start()
    options = parse_render(True)
    url = site.url("/js")
    peaks: dict[int, int] = {}
    processes: dict[int, int] = {}

    async def sample() -> None:
        while True:
            pid = pool.slots[0].pid
            if pid:
                memory = pool.browser_memory()
                if pool.slots[0].pid == pid:  # the same browser before and after the read
                    peaks[pid] = max(peaks.get(pid, 0), memory)
                    processes[pid] = max(processes.get(pid, 0), len(pool.processes()))
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    try:
        seconds = await _drive(renders, pages, lambda: pool.render(url, options))
        restarts = pool.stats()["browser_restarts"]
        failed = sum(n for outcome, n in pool.stats()["renders"].items() if outcome != "completed")
    finally:
        sampler.cancel()
        await pool.stop()
    series = [round(peak / 2**20, 1) for peak in peaks.values()]
    return {"renders": renders, "recycle_every": recycle, "pages": pages, "failed": failed,
            "browser_restarts": restarts, "renders_per_s": round(renders / seconds, 2),
            "generation_peak_pss_mb": series, "generation_processes": list(processes.values()),
            "max_over_min": round(max(series) / min(series), 2) if series else None,
            "last_over_first": round(series[-1] / series[0], 2) if series else None}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure asked for, as one JSON object."""
    chromium = find_chromium(args.chromium)
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium, or give --chromium=PATH")
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_before": list(os.getloadavg())}
    site = await Site().start()
    try:
        if args.renders:
            results["plain_playwright_1_browser"] = await measure_plain(site, chromium, args.pages, args.renders)
            results["pool_1_browser"] = await measure_pool(site, chromium, 1, args.pages, args.renders)
            results["pool_2_browsers"] = await measure_pool(site, chromium, 2, args.pages, args.renders)
            ceiling = results["plain_playwright_1_browser"]["renders_per_s"]
            for name in ("pool_1_browser", "pool_2_browsers"):
                results[name]["ratio_to_ceiling"] = round(results[name]["renders_per_s"] / ceiling, 2)
        if args.flat:
            results["flat_memory"] = await measure_flat(site, chromium, args.pages, args.flat, args.recycle)
    finally:
        await site.stop()
    results["load_average_after"] = list(os.getloadavg())
    return results


def run(argv: list[str]) -> None:
    """Parse the options, measure, print a line per figure set and then the JSON."""
    parser = argparse.ArgumentParser(prog="dev.py bench render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=100,
                        help="renders per throughput run (default 100; 0 skips the throughput runs)")
    parser.add_argument("--pages", type=int, default=4, help="pages at once per browser (default 4)")
    parser.add_argument("--flat", type=int, default=200,
                        help="renders in the flat-memory run (default 200; 0 skips it)")
    parser.add_argument("--recycle", type=int, default=50,
                        help="the flat-memory run's --render-recycle (default 50)")
    parser.add_argument("--chromium", default=shutil.which("chromium"))
    parser.add_argument("--json", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    logging.getLogger("tornado.access").setLevel(logging.ERROR)  # the test site's 404s for /favicon.ico
    out = asyncio.run(main(args))
    for name, figures in out.items():
        print(f"{name:32} {figures}")
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=2)


if __name__ == "__main__":
    run(sys.argv[1:])
