"""Migration 18 on a database written by release 0.3 whose pages were indexed: the search index is rebuilt
without word positions, its pages are found again once the background loop has reached them; and the words of a
search are the tokens the index holds (`_` parts them), so no search is a phrase it cannot match."""

from __future__ import annotations

import sqlite3

import pytest

from jobqueue.errors import BadRequest
from jobqueue.filters import TASK_FILTERS
from jobqueue.models import Result, TaskIds
from jobqueue.store.base import Lease, NewTask, TaskFilter
from jobqueue.store.sqlite.store import SQLiteStore
from jobqueue.text_index import index_round
from tests.test_migration_release_0_3 import WRITTEN_AT, v7_db


def indexed_by_release_0_3(path: str) -> set[str]:
    """Index the fixture's page on two addresses as release 0.3's loop did (positions kept); their jobs' ids."""
    conn = sqlite3.connect(path)
    pages = conn.execute("SELECT seq, job_id FROM results WHERE url LIKE 'https://a.example/%'").fetchall()
    conn.executemany("INSERT INTO results_fts (rowid, text) VALUES (?, 'the same page on two addresses')",
                     [(seq,) for seq, _job_id in pages])
    conn.execute("UPDATE text_index_state SET indexed_seq = (SELECT MAX(seq) FROM results)")
    conn.commit()
    conn.close()
    assert len(pages) == 2
    return {job_id for _seq, job_id in pages}


async def found(store: SQLiteStore, words: str) -> set[str]:
    """The jobs a `q` search for `words` lists."""
    return {t.id for t in (await store.list(TaskFilter(q=words), 10, None)).items}


@pytest.mark.gen_test
async def test_a_release_0_3_search_index_is_rebuilt_without_positions_and_finds_its_pages_again(tmp_path):
    path = v7_db(tmp_path)
    jobs = indexed_by_release_0_3(path)
    store = SQLiteStore(path, clock=lambda: WRITTEN_AT + 7200)
    await store.open()
    try:
        conn = sqlite3.connect(path)
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'results_fts'").fetchone()
        assert "detail=none" in sql
        assert conn.execute("SELECT indexed_seq FROM text_index_state").fetchone() == (0,)
        conn.close()
        assert await found(store, "addresses") == set()  # not yet reached by the loop
        while await index_round(store):
            pass
        assert await found(store, "addresses") == jobs
        assert await found(store, "same page") == jobs
        assert await found(store, "same missing") == set()
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_a_word_with_an_underscore_is_found_by_its_parts(tmp_path):
    store = SQLiteStore(str(tmp_path / "q.db"))
    await store.open()
    try:
        new = NewTask(TaskIds().new(), "http://127.0.0.1/p", "127.0.0.1")
        await store.add([new])
        (task,) = await store.claim(1, 30.0, [])
        page = b"<p>call snake_case_name here</p>"
        await store.complete(Lease(task.id, task.lease_token or ""), Result(
            id=task.id, url=task.url, final_url=task.url, http_status=200, headers={"content-type": "text/plain"},
            content_type="text/plain", encoding="utf-8", encoding_source="header", size=len(page), truncated=False,
            elapsed_ms=1.0, fetched_at=1.0, sha256="", body=page))
        while await index_round(store):
            pass
        assert await found(store, "snake_case_name") == {task.id}
        assert await found(store, "case") == {task.id}
        assert await found(store, "snake_other") == set()
        # a letter to Python that SQLite's tokenizer reads as a separator makes a phrase: it matches nothing
        assert await found(store, "case\u19b0name") == set()
        assert await store.count_matching(TaskFilter(q="case\u19b0name"), 10) == {
            "queued": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0}
    finally:
        await store.close()


def test_a_search_of_underscores_alone_has_no_word():
    with pytest.raises(BadRequest, match="at least one word"):
        TASK_FILTERS["q"]("_ __")
    assert TASK_FILTERS["q"]("snake_case") == "snake_case"


@pytest.mark.gen_test
async def test_the_indexer_reads_its_batch_in_one_read_bounded_by_the_size_of_its_bodies(tmp_path, monkeypatch):
    from jobqueue.store.sqlite import text

    store = SQLiteStore(str(tmp_path / "bounded.db"))
    await store.open()
    try:
        pages = [b"<p>page %d</p>" % i for i in range(5)]  # 13 bytes each
        await store.add([NewTask(TaskIds().new(), f"http://127.0.0.1/{i}", "127.0.0.1") for i in range(5)])
        for page in pages:
            (task,) = await store.claim(1, 30.0, [])
            await store.complete(Lease(task.id, task.lease_token or ""), Result(
                id=task.id, url=task.url, final_url=task.url, http_status=200, headers={},
                content_type="text/html", encoding="utf-8", encoding_source="header", size=len(page),
                truncated=False, elapsed_ms=1.0, fetched_at=1.0, sha256="", body=page))
        assert [r.body for _seq, r in await store.results_to_index(10)] == pages
        monkeypatch.setattr(text, "INDEX_READ_BYTES", 26)
        assert [r.body for _seq, r in await store.results_to_index(10)] == pages[:2]  # the second reaches 26
        assert [r.body for _seq, r in await store.results_to_index(1)] == pages[:1]
    finally:
        await store.close()
