"""The crawl commands: `crawl URL...` (with --wait, followed to its end), `crawls [ID]` and `crawl-cancel ID`."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from jobqueue.client import APIError, AsyncClient, Crawl

from .commands import OK, SOME_FAILED, note
from .progress import Tally, progress_for, tick
from .urlfile import UsageError

SKIPS = ("robots", "scope", "duplicate", "limit")


def crawl_options(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /crawls fields the command line gave (the server's defaults for the rest)."""
    options: dict[str, Any] = {}
    for name in ("max_pages", "max_depth", "scope", "include", "exclude", "sitemap", "priority"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.tag:
        options["tags"] = args.tag
    if args.ignore_robots:
        options["robots"] = "ignore"
    if args.ignore_query:
        options["ignore_query"] = True
    return options


async def crawl(client: AsyncClient, args: argparse.Namespace) -> int:
    """Start a crawl from the seed URLs and print its id; with --wait, follow it to the end."""
    seeds = args.urls[0] if len(args.urls) == 1 else args.urls
    try:
        started = await client.crawl(seeds, **crawl_options(args))
    except APIError as exc:
        if exc.status == 400:
            raise UsageError(f"the server refused the crawl: {exc.message}") from exc
        raise
    if args.json and not args.wait:
        print(json.dumps({"crawl": started.raw}), flush=True)
        return OK
    if not args.json:
        print(started.id, flush=True)
    note(f"crawling from {_seeds(started)} as crawl {started.id}; `jobqueue crawl-cancel {started.id}` stops it")
    if not args.wait:
        return OK
    began = time.monotonic()
    final = await follow_crawl(client, started)
    if args.json:
        print(json.dumps({"crawl": final.raw}), flush=True)
    else:
        counts = {status: final.counts.get(status, 0) for status in ("completed", "failed", "cancelled")}
        print(f"crawl {final.id} {final.status}: {final.discovered} pages, {counts['completed']} completed, "
              f"{counts['failed']} failed, {counts['cancelled']} cancelled; {skipped(final)}; in "
              f"{time.monotonic() - began:.1f}s", flush=True)
    return SOME_FAILED if final.status == "cancelled" or final.failed or final.counts.get("cancelled") else OK


async def follow_crawl(client: AsyncClient, started: Crawl) -> Crawl:
    """Show the crawl's progress (pages found, done, failed, links skipped by reason) until it is over."""
    tally = Tally(started.discovered, growing=True)
    with progress_for(tally) as display:
        def moved(now: Crawl) -> None:
            tally.update(now.done, now.failed, now.discovered, f"{now.discovered} discovered, {skipped(now)}"
                         + (", reading sitemaps" if now.seeding else ""))
            display.show()

        ticker = asyncio.ensure_future(tick(display))
        try:
            return await client.wait_crawl(started.id, on_progress=moved)
        finally:
            ticker.cancel()


async def crawls(client: AsyncClient, args: argparse.Namespace) -> int:
    """One crawl (by its id), or the newest crawls, a line each."""
    if args.id is not None:
        found = await _one(client, args.id, client.get_crawl)
        print(json.dumps({"crawl": found.raw}) if args.json else describe_crawl(found))
        return OK
    listed: list[Crawl] = []
    async for each in client.crawls(page_size=min(args.limit, 100)):
        listed.append(each)
        if len(listed) >= args.limit:
            break
    if args.json:
        print(json.dumps({"crawls": [c.raw for c in listed]}))
    elif not listed:
        note(f"no crawls on {client.server}")
    for each in [] if args.json else listed:
        print(describe_crawl(each))
    return OK


async def crawl_cancel(client: AsyncClient, args: argparse.Namespace) -> int:
    """Stop a crawl: its unfinished pages are cancelled, finished ones stay."""
    stopped = await _one(client, args.id, client.cancel_crawl)
    print(json.dumps({"crawl": stopped.raw}) if args.json else describe_crawl(stopped))
    return OK


async def _one(client: AsyncClient, crawl_id: str, call: Any) -> Crawl:
    try:
        found: Crawl = await call(crawl_id)
    except APIError as exc:
        if exc.status == 404:
            raise UsageError(f"no crawl has the id {crawl_id!r} on {client.server}") from exc
        raise
    return found


def skipped(found: Crawl) -> str:
    """`skipped 1 robots, 3 scope, 2 duplicate, 0 limit`: the links a crawl left out, by reason."""
    return "skipped " + ", ".join(f"{found.skipped.get(reason, 0)} {reason}" for reason in SKIPS)


def describe_crawl(found: Crawl) -> str:
    """One crawl in a line."""
    counts = ", ".join(f"{name} {value}" for name, value in found.counts.items())
    return (f"crawl {found.id}: {found.status}, {found.done}/{found.discovered} pages done ({counts}), "
            f"{skipped(found)}, from {_seeds(found)}")


def _seeds(found: Crawl) -> str:
    more = len(found.seeds) - 1
    return found.seeds[0] + (f" (and {more} more)" if more > 0 else "") if found.seeds else "no seeds"
