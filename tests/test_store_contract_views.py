"""The store contract for derived views of bodies (Markdown, text, links, metadata as one JSON document): kept once
per (body sha256, extractor version), the first put of a key winning across processes, and dropped with their body
whatever releases it (retention, deleting or retrying the last job that names it), never while a job names it.

Runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py; the closed-store checks of every role,
this one's included, are there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import sqlite3
from typing import Any

import pytest

from jobqueue.history.codec import digest
from jobqueue.history.retention import DAY, RetentionPolicy, apply_retention
from jobqueue.models import TaskIds
from jobqueue.store.base import Lease, NewTask
from jobqueue.store.views import MAX_STORED_BYTES
from tests.test_storage import LEASE, result_for

IDS = TaskIds()
PAGE = b"<html><body><article><p>The article.</p></article><footer>footer</footer></body></html>"


def views(markdown: str, n_links: int = 2) -> str:
    """A views document as the extractor's Views.as_dict() would give it, serialized."""
    return json.dumps({"markdown": markdown, "text": markdown.strip("# "), "metadata": {"title": "T"},
                       "links": [{"url": f"https://example.com/{i}", "text": f"link {i}"} for i in range(n_links)]})


async def completed(store: Any, body: bytes = PAGE, url: str | None = None) -> tuple[str, str]:
    """Add a job and complete it with `body` (its sha256 is the body's, as the workers take it): (id, sha256)."""
    url = url or f"https://example.com/{IDS.new()}"
    await store.add([NewTask(IDS.new(), url, "example.com")])
    [claimed] = await store.claim(1, LEASE, [])
    result = dataclasses.replace(result_for(claimed.id, url, body), sha256=digest(body))
    assert await store.complete(Lease(claimed.id, claimed.lease_token), result)
    stored = await store.get_result(claimed.id, with_body=False)
    assert stored.sha256 == digest(body) and stored.encoding == "utf-8"  # what a caller keys views by, and decodes
    return claimed.id, stored.sha256


async def kept_rows(store: Any, sha: str) -> int:
    """How many views of a body the database holds, every version: read from the backend's own table."""
    if store.name == "sqlite":
        with contextlib.closing(sqlite3.connect(store.path)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM body_views WHERE sha256 = ?", (sha,)).fetchone()[0])
    return int(await store.db.body_views.count_documents({"sha": sha}))


@pytest.mark.gen_test
async def test_views_round_trip_compressed_and_keyed_by_version(open_store):
    store = await open_store()
    _, sha = await completed(store)
    assert await store.get_views(sha, 1) is None
    big = views("# Title\n\n" + "A sentence of the article, repeated. " * 5000, n_links=3000)  # compressible
    await store.put_views(sha, 1, big)
    assert await store.get_views(sha, 1) == big
    assert await store.get_views(sha, 2) is None  # another extractor version computes its own
    assert await store.get_views("f" * 64, 1) is None
    unicode = views("# Café ☕ — naïve 𝄞")
    _, other_sha = await completed(store, b"<html><p>another page</p></html>")
    await store.put_views(other_sha, 1, unicode)
    assert await store.get_views(other_sha, 1) == unicode and await store.get_views(sha, 1) == big
    reader = await open_store()  # another process on the same database reads what this one kept
    assert await reader.get_views(sha, 1) == big


@pytest.mark.gen_test
async def test_a_second_put_of_a_key_is_a_no_op_and_a_newer_version_drops_the_older(open_store):
    store = await open_store()
    _, sha = await completed(store)
    first, second = views("# first"), views("# second")
    await store.put_views(sha, 1, first)
    await store.put_views(sha, 1, second)
    assert await store.get_views(sha, 1) == first
    await store.put_views(sha, 3, second)
    assert await store.get_views(sha, 3) == second
    assert await store.get_views(sha, 1) is None  # the lazy drop of an older extractor's views
    await store.put_views(sha, 2, first)  # a process still on an older extractor keeps its own, not touching newer
    assert await store.get_views(sha, 2) == first and await store.get_views(sha, 3) == second


@pytest.mark.gen_test
async def test_two_processes_putting_the_same_views_at_once_keep_one(open_store):
    stores = [await open_store() for _ in range(4)]
    _, sha = await completed(stores[0])
    documents = [views(f"# from process {i}") for i in range(len(stores))]
    for round_ in range(5):
        await asyncio.gather(*(s.put_views(sha, 10 + round_, d) for s, d in zip(stores, documents, strict=True)))
        kept = {await s.get_views(sha, 10 + round_) for s in stores}
        assert len(kept) == 1 and kept <= set(documents)  # one winner, seen alike by every process
        assert await kept_rows(stores[0], sha) == 1  # and the older round's went


@pytest.mark.gen_test
async def test_views_of_a_body_no_longer_stored_are_not_kept(open_store):
    store = await open_store()
    task_id, sha = await completed(store)
    await store.put_views("e" * 64, 1, views("# no such body"))
    assert await store.get_views("e" * 64, 1) is None
    assert await store.delete_many([task_id]) == [task_id]
    await store.put_views(sha, 1, views("# too late"))  # an extraction that finished after its body went
    assert await store.get_views(sha, 1) is None


@pytest.mark.gen_test
async def test_views_stay_while_a_job_names_the_body_and_go_with_the_last(open_store):
    store = await open_store()
    first, sha = await completed(store)
    second, same = await completed(store)  # another address with the same page: one body
    retried, retried_sha = await completed(store, b"<html><p>fetched again</p></html>")
    assert same == sha
    document = views("# shared")
    await store.put_views(sha, 1, document)
    await store.put_views(retried_sha, 1, views("# retried"))
    assert await store.delete_many([first]) == [first]
    assert await store.get_views(sha, 1) == document  # the second job still names the body
    assert await store.delete_many([second]) == [second]
    assert await store.get_views(sha, 1) is None and await kept_rows(store, sha) == 0
    await store.retry(retried)  # a retry drops the old result, and with it the body no other job names
    assert await store.get_views(retried_sha, 1) is None
    _, again = await completed(store)  # the page stored again: its views are extracted again
    assert again == sha and await store.get_views(sha, 1) is None


@pytest.mark.gen_test
async def test_retention_drops_views_with_the_bodies_it_releases(open_store, clock):
    store = await open_store()
    _, old = await completed(store, b"<html><p>old page</p></html>", url="https://example.com/old")
    _, kept = await completed(store, b"<html><p>kept newest</p></html>", url="https://example.com/kept")
    await store.put_views(old, 1, views("# old"))
    await store.put_views(kept, 1, views("# kept"))
    clock.advance(3 * DAY)
    _, fresh = await completed(store, b"<html><p>fresh page</p></html>", url="https://example.com/old")
    await store.put_views(fresh, 1, views("# fresh"))
    deleted = await apply_retention(store, RetentionPolicy(days=1, keep_per_url=1, batch=1), clock())
    assert deleted == 1
    assert await store.get_views(old, 1) is None and await kept_rows(store, old) == 0  # expired, not the newest
    assert await store.get_views(kept, 1) == views("# kept")  # its URL's newest
    assert await store.get_views(fresh, 1) == views("# fresh")


@pytest.mark.gen_test
async def test_views_too_large_to_keep_are_not_kept(open_store):
    store = await open_store()
    _, sha = await completed(store)
    noise = base64.b64encode(os.urandom(MAX_STORED_BYTES + (1 << 20))).decode()  # zstd keeps 3/4 of it
    huge = json.dumps({"markdown": noise})
    await store.put_views(sha, 1, huge)
    assert await store.get_views(sha, 1) is None


@pytest.mark.gen_test
async def test_a_put_that_raced_its_bodys_deletion_takes_its_views_back(open_store):
    store = await open_store()
    if store.name == "sqlite":
        pytest.skip("SQLite's writer checks for the body and inserts the views in one step")
    task_id, sha = await completed(store)
    assert await store.delete_many([task_id]) == [task_id]
    real, looks = store._body_stored, []

    async def seen_before_it_went(sha256: str) -> bool:
        looks.append(sha256)
        return True if len(looks) == 1 else await real(sha256)  # the first look came before the deletion

    store._body_stored = seen_before_it_went
    await store.put_views(sha, 1, views("# raced"))
    assert len(looks) == 2 and await kept_rows(store, sha) == 0
