"""A site on 127.0.0.1 for the readable API's tests: the committed corpus (tests/fixtures/readable/), a binary
body, one page served the same under many paths, and hostile pages."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "readable")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
HOSTILE = {
    "deep": lambda: b"<html><body>" + b"<div>" * 300_000 + b"deep" + b"</div>" * 300_000 + b"</body></html>",
    "links": lambda: b"<html><body>" + b"".join(b'<a href="/p/%d">l%d</a>' % (i, i) for i in range(300_000))
    + b"</body></html>",
    # within the time limit, but views of 8 MB: what the IOLoop does with them shows
    "many_links": lambda: b"<html><body>" + b"".join(b'<a href="/p/%d">l%d</a>' % (i, i) for i in range(100_000))
    + b"</body></html>",
}


def corpus_page(name: str) -> bytes:
    """One page of the committed corpus."""
    with open(os.path.join(CORPUS, f"{name}.html"), "rb") as handle:
        return handle.read()


def corpus_expectations(name: str) -> dict[str, Any]:
    """What the corpus says of a page: the sentences its main text keeps and those it drops."""
    with open(os.path.join(CORPUS, f"{name}.json"), encoding="utf-8") as handle:
        return dict(json.load(handle))


class _Corpus(tornado.web.RequestHandler):
    def get(self, name: str) -> None:
        if not os.path.exists(os.path.join(CORPUS, f"{name}.html")):
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(corpus_page(name))


class _Same(tornado.web.RequestHandler):
    def get(self, _key: str) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(corpus_page("article"))


class _Png(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "image/png")
        self.finish(PNG)


class _Hostile(tornado.web.RequestHandler):
    def initialize(self, pages: dict[str, bytes]) -> None:
        self.pages = pages

    def get(self, kind: str) -> None:
        self.set_header("Content-Type", "text/html")
        self.finish(self.pages[kind])


class ReadableSite:
    """Start inside a running IOLoop; `url(path)` builds addresses; `stop()` closes it."""

    def __init__(self) -> None:
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        pages = {kind: make() for kind, make in HOSTILE.items()}
        self.server = HTTPServer(tornado.web.Application([
            (r"/corpus/(\w+)", _Corpus), (r"/same/(\w+)", _Same), (r"/png", _Png),
            (r"/hostile/(\w+)", _Hostile, {"pages": pages}),
        ]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.stop()
