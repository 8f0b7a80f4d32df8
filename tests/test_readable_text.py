"""Main text where text matters: `q` searches it, `changed_on: text` compares it, `diff?view=text` diffs it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from jobqueue.extract import ExtractPool
from jobqueue.extract.pool import stop_helpers
from jobqueue.history.changes import NOT_COMPARED, change_key, compared_key, text_key
from jobqueue.history.diff import diff_main_texts
from jobqueue.readable import ReadableViews
from jobqueue.store.base import TaskFilter
from jobqueue.text_index import index_round
from tests.test_storage import fetched, result_for


def article_page(word: str = "giraffe", stamp: str = "2024-01-01 10:00:00") -> bytes:
    """An article about `word` between a navigation and a footer that talk about zebras (and carry a timestamp)."""
    paragraphs = "".join(f"<p>Paragraph {i} of the field report: the {word} herd crossed the river at dawn, and "
                         "the rangers counted every animal twice before writing down the numbers.</p>"
                         for i in range(5))
    return (f"<!doctype html><html><head><title>Field report</title></head><body><header><nav><a href='/'>Home</a>"
            " <a href='/zebra'>Zebra sightings</a> <a href='/about'>About us</a></nav></header>"
            f"<main><article><h1>The {word} report</h1>{paragraphs}</article></main>"
            f"<footer><p>Page generated at {stamp}. Copyright Savanna Watch.</p><a href='/zebra'>Zebra club</a>"
            "</footer></body></html>").encode()


class ArticleSite:
    """An HTML page on 127.0.0.1 whose article and footer the test changes between fetches."""

    def __init__(self) -> None:
        self.word, self.stamp, self.fetches = "giraffe", "2024-01-01 10:00:00", 0
        site = self

        class Page(tornado.web.RequestHandler):
            def get(self) -> None:
                site.fetches += 1
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.write(article_page(site.word, site.stamp))

        sockets = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/report"
        self.server = HTTPServer(tornado.web.Application([(r"/report", Page)]))
        self.server.add_sockets(sockets)


@pytest.fixture
def article(io_loop: IOLoop) -> Iterator[ArticleSite]:
    async def start() -> ArticleSite:
        return ArticleSite()

    site = io_loop.run_sync(start)
    yield site
    site.server.stop()


@pytest.fixture
def views(io_loop: IOLoop) -> Iterator[Any]:
    """A real extraction pool behind ReadableViews (the store is given per test)."""
    pool = ExtractPool(workers=1, timeout=10)
    yield pool
    pool.close()
    stop_helpers()  # the forkserver and resource tracker the pool started


async def searched(store: Any, words: str) -> set[str]:
    return {t.id for t in (await store.list(TaskFilter(q=words), 10, None)).items}


@pytest.mark.gen_test(timeout=60)
async def test_the_index_holds_an_html_pages_main_text_and_a_plain_page_whole(open_store, views):
    store = await open_store()
    if "q" not in store.capabilities.list_filters:
        pytest.skip("this store offers no q")
    html = await fetched(store, "https://example.com/report", article_page())
    readable = ReadableViews(store, views)
    while await index_round(store, readable):
        pass
    assert await searched(store, "giraffe") == {html}
    assert await searched(store, "zebra") == set()
    assert await searched(store, "generated") == set()  # the footer's timestamp line is not main text


def test_a_text_key_ignores_whitespace_and_never_equals_a_body_digest():
    assert text_key("a  b\n c") == text_key("a b c") != text_key("a b d")
    assert text_key("a").startswith("text:")
    result = result_for("r", "https://x/", b"<p>x</p>")
    assert compared_key(result, "f" * 64) == "f" * 64  # no change_key: the body is compared, as before
    result.change_key = text_key("x")  # type: ignore[attr-defined]  # until the field is declared
    assert compared_key(result, "f" * 64) == text_key("x")
    result.change_key = NOT_COMPARED  # type: ignore[attr-defined]
    assert compared_key(result, "f" * 64) is None


@pytest.mark.gen_test(timeout=60)
async def test_change_key_is_the_main_texts_only_for_recurring_text_jobs(open_store, views):
    store = await open_store()
    readable = ReadableViews(store, views)

    class Run:
        schedule_id, changed_on = "s1", "text"

    first = result_for("a", "https://x/", article_page(stamp="10:00"))
    later = result_for("b", "https://x/", article_page(stamp="10:05"))
    later.sha256 = "1" * 64
    changed = result_for("c", "https://x/", article_page(word="elephant"))
    changed.sha256 = "2" * 64
    keys = [await change_key(Run(), r, readable) for r in (first, later, changed)]
    assert keys[0] == keys[1] != keys[2] and keys[0].startswith("text:")
    binary = result_for("d", "https://x/", b"\x89PNG\r\n\x1a\n" + bytes(64))
    binary.content_type, binary.sha256 = "image/png", "3" * 64
    assert await change_key(Run(), binary, readable) == NOT_COMPARED
    Run.changed_on = "body"
    assert await change_key(Run(), first, readable) is None


def test_a_text_diff_compares_main_texts_and_says_when_they_are_the_same():
    old, new = result_for("old", "https://x/", b"a"), result_for("new", "https://x/", b"b")
    new.sha256 = "1" * 64
    same = diff_main_texts(old, new, "one\ntwo", "one\ntwo\n")
    assert (same["same_body"], same["same_text"], same["diff"], same["view"]) == (False, True, "", "text")
    answer = diff_main_texts(old, new, "one\ntwo", "one\nthree")
    assert "-two\n+three\n" in answer["diff"] and answer["truncated"] is False
