"""A site serving a page of the committed readable corpus and a binary body, on 127.0.0.1, for the tests of
where readable views are carried (export, client, CLI, dashboard)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "readable")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def corpus(name: str) -> bytes:
    """A file of the committed corpus, as bytes."""
    with open(os.path.join(CORPUS, name), "rb") as handle:
        return handle.read()


def expected(name: str = "article") -> dict[str, Any]:
    """The sentences a corpus page's main content keeps and drops."""
    return dict(json.loads(corpus(f"{name}.json")))


class _Article(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(corpus("article.html"))


class _Png(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "image/png")
        self.write(PNG)


class Site:
    """/article (the corpus's article) and /png (a binary body)."""

    def __init__(self) -> None:
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(tornado.web.Application([(r"/article", _Article), (r"/png", _Png)]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        """An address on the site."""
        return f"http://127.0.0.1:{self.port}{path}"


async def _site() -> Site:
    return Site()


@pytest.fixture
def site(io_loop: Any) -> Iterator[Site]:
    """The site, started on the test's IOLoop."""
    made = io_loop.run_sync(_site)
    yield made
    made.server.stop()


def readable_text(markdown: str) -> str:
    """Markdown with its line breaks folded, so a sentence wrapped across lines is found whole."""
    return " ".join(markdown.split())


def main() -> None:
    """Run the site alone (for browser tests): prints its port, serves until killed."""
    import asyncio

    async def serve() -> None:
        print(Site().port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
