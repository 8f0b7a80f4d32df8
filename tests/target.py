"""A real HTTP server on 127.0.0.1 that plays every kind of site the fetcher meets."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import time
import zlib
from collections import Counter, defaultdict

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

UTF8_TEXT = "Grüße, café, 日本語 ✓"
LATIN1_TEXT = "Café crème à la française"
SJIS_TEXT = "日本語のページです"
REAL_PNG = base64.b64decode(  # a 1x1 image a browser can decode
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4"
    "z8DwHwAFAAIBpfno5AAAAABJRU5ErkJggg==")
PNG_BYTES = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + os.urandom(64)
FIVE_MIB = (b"<p>" + b"x" * 1021 + b"</p>\n") * (5 * 1024)
OVER_CAP = 11 * 1024 * 1024
# Whole replies, bytes on the wire, that no HTTP library would produce: served by /raw/<name>.
RAW_REPLIES = {
    "http09": b"<html><p>an HTTP/0.9 reply: a body with no status line</p></html>\n",
    "garbage-status": b"HTTP/1.1 ok-ish, trust me\r\nContent-Length: 2\r\n\r\nok",
    "status-2000": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-huge": b"HTTP/1.1 99999999999999999999999 OK\r\nContent-Length: 2\r\n\r\nok",
    "status-600": b"HTTP/1.1 600 Beyond\r\nContent-Length: 2\r\n\r\nok",
    "status-099": b"HTTP/1.1 099 Below\r\nContent-Length: 2\r\n\r\nok",
    "binary-junk": b"\x00\x01\x02\xff\xfe junk\r\n\r\n",
    "redirect-to-bad-status": b"HTTP/1.1 302 Found\r\nLocation: /raw/status-2000\r\nContent-Length: 0\r\n\r\n",
    # a faithful archive keeps these as sent: the reason phrase, the casing, both cookies in order
    "archival": (b"HTTP/1.1 200 Fine Thanks\r\nX-ODD-case: Kept\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                 b"Content-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: "
                 + str(len(gzip.compress(b"archived words\n", mtime=0))).encode() + b"\r\n\r\n"
                 + gzip.compress(b"archived words\n", mtime=0)),
}


class TargetState:
    """What the target saw: hits per path and when they came."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.times: defaultdict[str, list[float]] = defaultdict(list)
        self.order: list[str] = []

    def record(self, key: str) -> int:
        self.hits[key] += 1
        self.times[key].append(time.monotonic())
        return self.hits[key]


class _Page(tornado.web.RequestHandler):
    @property
    def state(self) -> TargetState:
        return self.application.settings["state"]

    def prepare(self) -> None:
        self.state.record(self.request.path)


class Utf8(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(f"<!doctype html><title>u</title><p>{UTF8_TEXT}</p>".encode())


class Latin1Meta(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html")
        body = f'<html><head><meta charset="iso-8859-1"></head><body>{LATIN1_TEXT}</body></html>'
        self.write(body.encode("latin-1"))


class ShiftJis(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=Shift_JIS")
        self.write(f"<html><body>{SJIS_TEXT}</body></html>".encode("shift_jis"))


class Gzipped(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Encoding", "gzip")
        self.write(gzip.compress(("gzip " + UTF8_TEXT + "\n").encode() * 500))


class Deflated(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Content-Encoding", "deflate")
        self.write(zlib.compress(("deflate " + UTF8_TEXT).encode() * 100))


class Big(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(FIVE_MIB)


class OverCap(_Page):
    """Streams past the cap without a Content-Length, so only a streaming check can stop it."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        chunk = b"y" * 65536
        sent = 0
        try:
            while sent < OVER_CAP:
                self.write(chunk)
                await self.flush()
                sent += len(chunk)
        except tornado.iostream.StreamClosedError:
            return


class Binary(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "image/png")
        self.write(PNG_BYTES)


class RealPng(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "image/png")
        self.write(REAL_PNG)


class Styled(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write("<!doctype html><style>p { color: rgb(1, 2, 3); }</style><p id=x>styled</p>"
                   "<script>document.getElementById('x').textContent = 'script ran';</script>")


class Status(_Page):
    def get(self, code: str) -> None:
        self.set_status(int(code))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(f"<h1>status {code}</h1>")


class Flaky(_Page):
    """Fails with 503 `fail` times per key, then answers 200."""

    def get(self, key: str) -> None:
        failures = int(self.get_query_argument("fail", "2"))
        if self.state.hits[self.request.path] <= failures:
            self.set_status(503)
            self.write("busy")
            return
        self.write(f"ok after {failures} failures")


class RetryAfter(_Page):
    def get(self, key: str) -> None:
        if self.state.hits[self.request.path] == 1:
            self.set_status(429)
            self.set_header("Retry-After", self.get_query_argument("after", "1"))
            self.write("slow down")
            return
        self.write("thanks for waiting")


class Redirect(_Page):
    def get(self, remaining: str) -> None:
        n = int(remaining)
        self.redirect(f"/redirect/{n - 1}" if n > 1 else "/utf8", status=302 if n % 2 else 301)


class RedirectTo(_Page):
    def get(self) -> None:
        self.redirect(self.get_query_argument("url"), status=302)


class Slow(_Page):
    async def get(self) -> None:
        await asyncio.sleep(float(self.get_query_argument("delay", "2")))
        self.write("finally")


class Echo(_Page):
    """Answers with what it was sent (method, headers, body) as JSON, for per-job fetch options; also
    records the order of arrival in `state.order`."""

    def _echo(self) -> None:
        self.state.order.append(self.request.path)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"method": self.request.method, "headers": dict(self.request.headers),
                               "body": self.request.body.decode("utf-8", "replace")}))

    get = post = _echo  # type: ignore[assignment]

    def head(self, *args: str) -> None:  # type: ignore[override]
        self.state.order.append(self.request.path)
        self.set_header("X-Method", "HEAD")


class Page(_Page):
    """A small page per key, for many-job tests; `delay` slows it down."""

    async def get(self, key: str) -> None:
        delay = float(self.get_query_argument("delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(f"<p>page {key}</p>")


class Script(_Page):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write("<h1>hostile</h1><script>window.parent.document.title='pwned';"
                   "document.title='pwned';fetch('/jobqueue/api/v1.0/queue_tasks',{method:'POST',"
                   "body:JSON.stringify({url:'http://example.com/pwned'})})</script>")


class Trickle(_Page):
    """One byte every `every` seconds, forever: only a total timeout ends it."""

    async def get(self) -> None:
        every = float(self.get_query_argument("every", "1"))
        try:
            while True:
                self.write(b".")
                await self.flush()
                await asyncio.sleep(every)
        except tornado.iostream.StreamClosedError:
            return


class Endless(_Page):
    """A page that never ends, streamed as fast as the client reads."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/html")
        chunk = b"<p>" + b"z" * 65530 + b"</p>"
        try:
            while True:
                self.write(chunk)
                await self.flush()
        except tornado.iostream.StreamClosedError:
            return


class RedirectLoop(_Page):
    def get(self, n: str) -> None:
        self.redirect(f"/loop/{1 - int(n)}")


class ManyHeaders(_Page):
    def get(self) -> None:
        for i in range(1000):
            self.add_header(f"X-Header-{i}", f"value {i}")
        self.write("many headers")


class BadGzip(_Page):
    def get(self) -> None:
        self.set_header("Content-Encoding", "gzip")
        self.set_header("Content-Type", "text/plain")
        self.write(b"\x1f\x8b\x08\x00this is not gzip at all" * 10)


class BadCharset(_Page):
    """Declares charsets that do not exist, in the header and in <meta>."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=x-no-such-charset")
        self.write('<meta charset="utf-1024"><p>caf\xc3\xa9</p>'.encode("latin-1"))


class RawReply(_Page):
    """Takes the socket from the HTTP server and writes one of RAW_REPLIES verbatim, then hangs up."""

    async def get(self, name: str) -> None:
        reply = RAW_REPLIES[name]
        self._auto_finish = False  # the handler no longer owns the connection, so it must not finish it
        stream = self.request.connection.detach()  # type: ignore[union-attr]
        try:
            await stream.write(reply)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            stream.close()


def make_target_app(state: TargetState) -> tornado.web.Application:
    """The routes of the target site."""
    return tornado.web.Application(
        [
            (r"/utf8", Utf8),
            (r"/latin1-meta", Latin1Meta),
            (r"/sjis", ShiftJis),
            (r"/gzip", Gzipped),
            (r"/deflate", Deflated),
            (r"/big", Big),
            (r"/over-cap", OverCap),
            (r"/binary", Binary),
            (r"/png", RealPng),
            (r"/styled", Styled),
            (r"/status/(\d+)", Status),
            (r"/flaky/(\w+)", Flaky),
            (r"/retry-after/(\w+)", RetryAfter),
            (r"/redirect/(\d+)", Redirect),
            (r"/redirect-to", RedirectTo),
            (r"/slow", Slow),
            (r"/page/(\w+)", Page),
            (r"/echo(?:/.*)?", Echo),
            (r"/script", Script),
            (r"/trickle", Trickle),
            (r"/endless", Endless),
            (r"/loop/(\d)", RedirectLoop),
            (r"/many-headers", ManyHeaders),
            (r"/bad-gzip", BadGzip),
            (r"/bad-charset", BadCharset),
            (r"/raw/([\w-]+)", RawReply),
        ],
        state=state,
    )


class Target:
    """A started target server; `url(path)` builds addresses on it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.state = TargetState()
        self.host = host
        sockets = bind_sockets(0, host)
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(make_target_app(self.state))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.server.stop()


class ConnectionCounter:
    """A raw TCP listener that only counts connections: proof that nothing reached it."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, host: str) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accept, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def main() -> None:
    """Run the target alone (for subprocess tests): prints its port, serves until killed."""
    import sys

    async def serve() -> None:
        target = Target(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1")
        print(target.port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
