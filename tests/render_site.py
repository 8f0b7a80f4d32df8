"""Pages for the render tests: a real HTTP server on 127.0.0.1, and a raw TCP listener that counts accepts.

Both run on an event loop in a background thread (`LoopThread`), beside the render pool under test.
"""

from __future__ import annotations

import asyncio
import html
import json
import threading
from collections import Counter
from collections.abc import Awaitable
from typing import Any, TypeVar

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

T = TypeVar("T")

JS_PAGE = """<!doctype html><html><head><title>js</title></head><body><div id="root"></div>
<script>document.getElementById('root').innerHTML = '<p id="made">made by javascript</p>';</script></body></html>"""
LATE_PAGE = """<!doctype html><html><body><script>
setTimeout(() => { const p = document.createElement('p'); p.id = 'late'; p.textContent = 'came late';
document.body.appendChild(p); }, 400);</script></body></html>"""
WAIT_MS_PAGE = """<!doctype html><html><body><script>
addEventListener('load', () => setTimeout(() => document.body.setAttribute('data-ready', 'yes'), 3000));
</script></body></html>"""  # counted from `load`, where a render without wait_ms reads the DOM
TALL_PAGE = """<!doctype html><html><body style="margin:0"><div style="height:3000px;background:#0a0">tall</div>
</body></html>"""
ENDLESS_PAGE = "<!doctype html><html><body><p>spinning</p><script>for (;;) {}</script></body></html>"
WORKER_JS = "fetch(self.location.search.slice(1)).catch(() => {}); postMessage('started');"


class LoopThread:
    """An asyncio loop in a daemon thread, so sync tests can share servers and a pool across tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 60) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class _Counted(tornado.web.RequestHandler):
    """Counts the requests of each path in the application's `hits`."""

    def prepare(self) -> None:
        hits: Counter[str] = self.application.settings["hits"]
        hits[self.request.path] += 1
        self.application.settings["hit"].set()


class _Static(_Counted):
    def initialize(self, body: str) -> None:
        self.body = body

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(self.body)


class _Echo(tornado.web.RequestHandler):
    """Shows the request's headers in the page, to see what the browser sent."""

    def get(self) -> None:
        seen = {k.lower(): v for k, v in self.request.headers.items()}
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("X-Echo", "yes")
        self.write(f"<!doctype html><html><body><pre id='seen'>{html.escape(json.dumps(seen))}</pre></body></html>")


class _SetCookie(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_cookie("seen", "first-render")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write("<!doctype html><html><body>cookie set</body></html>")


class _Redirect(tornado.web.RequestHandler):
    def get(self) -> None:
        self.redirect(self.get_argument("url"))


class _Worker(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/javascript")
        self.write(WORKER_JS)


class _Reach(tornado.web.RequestHandler):
    """A page that reaches for `other` (an origin the guard refuses) in every way a page can."""

    def get(self) -> None:
        other = self.get_argument("other")
        ws = other.replace("http://", "ws://")
        mine = f"{self.request.protocol}://{self.request.host}"
        meta = html.escape(f"<meta http-equiv='refresh' content='0;url={other}/meta-refresh'>")
        jsnav = html.escape(f"<script>location.href = '{other}/js-navigation';</script>")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(f"""<!doctype html><html><body><p id="here">reaching</p>
<img src="{other}/img">
<script src="{other}/script"></script>
<iframe src="{other}/iframe"></iframe>
<iframe srcdoc="{meta}"></iframe>
<iframe srcdoc="{jsnav}"></iframe>
<script>
fetch('{other}/fetch').catch(() => {{}});
const x = new XMLHttpRequest(); x.open('GET', '{other}/xhr'); x.send();
try {{ new WebSocket('{ws}/websocket'); }} catch (e) {{}}
new Worker('{mine}/worker.js?{other}/worker');
</script></body></html>""")


class _GoElsewhere(_Counted):
    """A page that sends its own main frame to `to` once loaded, by meta refresh or by script."""

    def get(self, how: str) -> None:
        to = html.escape(self.get_argument("to"))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        if how == "meta":
            self.write(f"<!doctype html><html><head><meta http-equiv='refresh' content='0;url={to}'></head></html>")
        else:
            self.write(f"<!doctype html><html><body><script>addEventListener('load', () => "
                       f"setTimeout(() => {{ location.href = '{to}'; }}, 0));</script></body></html>")


def site_app(hits: Counter[str], hit: asyncio.Event) -> tornado.web.Application:
    """The render tests' pages."""
    return tornado.web.Application(hits=hits, hit=hit, handlers=[
        (r"/js", _Static, {"body": JS_PAGE}),
        (r"/late", _Static, {"body": LATE_PAGE}),
        (r"/wait-ms", _Static, {"body": WAIT_MS_PAGE}),
        (r"/tall", _Static, {"body": TALL_PAGE}),
        (r"/endless", _Static, {"body": ENDLESS_PAGE}),
        (r"/echo", _Echo),
        (r"/set-cookie", _SetCookie),
        (r"/redirect-to", _Redirect),
        (r"/worker.js", _Worker),
        (r"/reach", _Reach),
        (r"/go-(meta|js)", _GoElsewhere),
    ])


class Site:
    """The pages, served on 127.0.0.1 from the loop that calls `start`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.server: HTTPServer | None = None
        self.port = 0
        self.hits: Counter[str] = Counter()
        self._hit = asyncio.Event()

    async def start(self) -> Site:
        """Listen on an ephemeral port."""
        sockets = bind_sockets(0, self.host)
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(site_app(self.hits, self._hit))
        self.server.add_sockets(sockets)
        return self

    async def served(self, path: str) -> None:
        """Until `path` has been requested at least once."""
        while not self.hits[path]:
            self._hit.clear()
            await self._hit.wait()

    def url(self, path: str) -> str:
        """An absolute URL on this site."""
        return f"http://{self.host}:{self.port}{path}"

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self.server is not None:
            self.server.stop()
            await self.server.close_all_connections()


class AcceptCounter:
    """A raw TCP listener that counts the connections it accepts and closes them at once."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.accepts = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> AcceptCounter:
        """Listen on an ephemeral port of `host`."""
        self._server = await asyncio.start_server(self._accepted, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accepted(self, _reader: Any, writer: asyncio.StreamWriter) -> None:
        self.accepts += 1
        writer.close()

    @property
    def origin(self) -> str:
        """`http://host:port` of this listener."""
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
