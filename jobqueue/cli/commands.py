"""What each client command does, over jobqueue.client.AsyncClient; each returns the exit status."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

from jobqueue.client import APIError, AsyncClient, Batch, Task

from .progress import Tally, progress_for, tick
from .reasons import failure_reasons, for_terminal
from .urlfile import UsageError, describe_bad, read_url_file

OK, SOME_FAILED, USAGE = 0, 1, 2


async def submit(client: AsyncClient, args: argparse.Namespace) -> int:
    """Submit a file of URLs as one batch (several past 100,000 URLs); with --wait, follow it to the end."""
    urls = read_url_file(args.file)
    if urls.bad and not args.skip_invalid:
        raise UsageError(f"{urls.name}: {len(urls.bad)} bad line{'s' if len(urls.bad) != 1 else ''}, nothing "
                         f"submitted: {describe_bad(urls.bad)}; fix them or pass --skip-invalid to submit the "
                         f"other {len(urls.urls)}")
    if urls.bad:
        note(f"skipping {len(urls.bad)} bad line{'s' if len(urls.bad) != 1 else ''}: {describe_bad(urls.bad)}")
    if not urls.urls:
        raise UsageError(f"{urls.name} has no valid URL to submit")
    spec: dict[str, Any] = {}
    if args.tag:
        spec["tags"] = args.tag
    if args.priority is not None:
        spec["priority"] = args.priority
    batches: list[Batch] = []
    for chunk in urls.chunks():
        try:
            batch = await client.submit_batch(chunk.lines, idempotency_key=str(uuid.uuid4()), **spec)
        except APIError as exc:
            if exc.status == 400:
                done = f" (batches {', '.join(b.id for b in batches)} were submitted)" if batches else ""
                raise UsageError(f"the server refused {urls.name}: {chunk.file_lines(exc.message)}{done}") from exc
            raise
        batches.append(batch)
        print(batch.id, flush=True)
    total = sum(b.total for b in batches)
    note(f"submitted {total} URL{'s' if total != 1 else ''} as batch{'es' if len(batches) > 1 else ''} "
         f"{', '.join(b.id for b in batches)}")
    if not args.wait:
        return OK
    return await follow(client, batches)


async def follow(client: AsyncClient, batches: list[Batch]) -> int:
    """Show progress until every batch is finished; 1 if any job failed or was cancelled."""
    started = time.monotonic()
    latest = {b.id: b for b in batches}
    tally = Tally(sum(b.total for b in batches))
    with progress_for(tally) as display:
        def moved(batch: Batch) -> None:
            latest[batch.id] = batch
            tally.update(sum(b.done for b in latest.values()), sum(b.failed for b in latest.values()))
            display.show()

        ticker = asyncio.ensure_future(tick(display))
        try:
            await asyncio.gather(*(client.wait_batch(b.id, on_progress=moved) for b in batches))
        finally:
            ticker.cancel()
    counts = {status: sum(b.counts.get(status, 0) for b in latest.values())
              for status in ("completed", "failed", "cancelled")}
    ids = ", ".join(latest)
    print(f"batch {ids} finished: {tally.total} jobs, {counts['completed']} completed, {counts['failed']} failed, "
          f"{counts['cancelled']} cancelled in {time.monotonic() - started:.1f}s", flush=True)
    for line in await failure_reasons(client, list(latest)):
        note(line)
    return SOME_FAILED if counts["failed"] or counts["cancelled"] else OK


async def status(client: AsyncClient, args: argparse.Namespace) -> int:
    """Counts of the whole queue, or one job or batch."""
    if args.id is None:
        counts = await client.counts()
        if args.json:
            print(json.dumps({"counts": counts}))
        else:
            print("  ".join(f"{name} {value}" for name, value in counts.items()))
        return OK
    try:
        task = await client.get(args.id)
    except APIError as exc:
        if exc.status != 404:
            raise
    else:
        print(json.dumps({"task": task.raw}) if args.json else describe_task(task))
        return OK
    try:
        batch = await client.batch(args.id)
    except APIError as exc:
        if exc.status == 404:
            raise UsageError(f"no job or batch has the id {args.id!r} on {client.server}") from exc
        raise
    print(json.dumps({"batch": batch.raw}) if args.json else describe_batch(batch))
    return OK


def describe_task(task: Task) -> str:
    """One job in a line or two."""
    line = f"job {task.id}: {task.status}"
    if task.http_status is not None:
        line += f" (HTTP {task.http_status})"
    line += f", {task.attempts} attempt{'s' if task.attempts != 1 else ''}, {task.url}"
    if task.error is not None:
        line += f"\n  error {task.error.code}: {task.error.message}"
    return line


def describe_batch(batch: Batch) -> str:
    """One batch in a line."""
    counts = ", ".join(f"{name} {value}" for name, value in batch.counts.items())
    state = f"finished {batch.raw.get('finished_at')}" if batch.finished else "not finished"
    return f"batch {batch.id}: {batch.done}/{batch.total} done ({counts}), {state}"


async def export(client: AsyncClient, args: argparse.Namespace) -> int:
    """Stream GET /export to a file (the server's file name by default, '-' for standard output)."""
    filters: dict[str, str] = {}
    for item in args.filter or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--filter {item!r}: write it as NAME=VALUE, e.g. --filter tag=news")
        filters[name] = value
    if args.status:
        filters["status"] = args.status
    if args.batch:
        filters["batch"] = args.batch
    if args.crawl:
        filters["crawl"] = args.crawl
    if args.views and args.format != "jsonl":
        raise UsageError(f"--with puts readable views on JSON Lines; it does not go with --format {args.format}")
    if args.output == "-" and args.format == "warc" and sys.stdout.isatty():
        raise UsageError("a WARC export is gzip-compressed bytes, not for a terminal: write it to a file "
                         "(--output FILE, or leave --output out for the server's file name) or pipe it on")
    dest: Any = sys.stdout.buffer if args.output == "-" else args.output
    written = await client.export(dest, args.format, args.views, **filters)
    if written.path is not None:
        note(f"wrote {written.path} ({written.size} bytes)")
    return OK


async def result(client: AsyncClient, args: argparse.Namespace) -> int:
    """Print a completed job's result as JSON, or its page as Markdown, text or links."""
    if args.markdown or args.whole_page:
        _print_text(await client.markdown(args.id, main_content=not args.whole_page))
    elif args.text:
        _print_text(await client.text(args.id))
    elif args.links:
        for link in await client.links(args.id):
            print(link["url"])
    else:
        print(json.dumps({"result": (await client.result(args.id)).raw}, ensure_ascii=False, indent=2))
    return OK


def _print_text(text: str) -> None:
    if sys.stdout.isatty():
        text = for_terminal(text)
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A line for the person at the terminal, kept off standard output."""
    print(f"jobqueue: {message}", file=sys.stderr, flush=True)
