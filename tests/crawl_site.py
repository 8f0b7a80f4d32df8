"""A small site with a link graph on 127.0.0.1 for crawl tests: it counts every request per path (query included).

    /            -> /a, /a#top, /b, //LOCALHOST:port/c (a host-case variant), /private/secret (robots.txt
                    disallows it), http://elsewhere.test/ (another host), /docs/, /item?id=1, /item?id=2, /file.pdf
    /a           -> /, /a/deeper
    /a/deeper    -> /a/deeper/more
    /b           -> /b/1, /b/2
    /docs/       -> /docs/guide, /docs/api
    anything else: a page without links
    /robots.txt  -> Disallow: /private, and a Sitemap line for /sitemap.xml
    /sitemap.xml -> /from-sitemap, /docs/in-sitemap, http://elsewhere.test/no

The site is reached as http://localhost:PORT/ so that a host-case variant of a link is the same page.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

GRAPH = {
    "/": ["/a", "/a#top", "/b", "//LOCALHOST:{port}/c", "/private/secret", "http://elsewhere.test/", "/docs/",
          "/item?id=1", "/item?id=2"],
    "/a": ["/", "/a/deeper"],
    "/a/deeper": ["/a/deeper/more"],
    "/b": ["/b/1", "/b/2"],
    "/docs/": ["/docs/guide", "/docs/api"],
}


class CrawlSite:
    """The site, started on a free port; `hits` counts requests by path and query."""

    def __init__(self, robots: str | None = None, slow: bool = False, robots_status: int = 200,
                 slow_sitemap: bool = False) -> None:
        self.hits: Counter[str] = Counter()
        self.page_starts: list[float] = []  # time.monotonic() of each page request
        self.release = asyncio.Event()  # a slow site answers pages other than / only once this is set
        site = self
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self.base = f"http://localhost:{self.port}"
        rules = robots if robots is not None else (
            f"User-agent: *\nDisallow: /private\n\nSitemap: {self.base}/sitemap.xml\n")

        class Robots(tornado.web.RequestHandler):
            def get(self) -> None:
                site.hits[self.request.uri] += 1
                self.set_status(robots_status)
                self.set_header("Content-Type", "text/plain")
                self.finish(rules)

        class Sitemap(tornado.web.RequestHandler):
            async def get(self) -> None:
                site.hits[self.request.uri] += 1
                if slow_sitemap:
                    await site.release.wait()
                self.set_header("Content-Type", "application/xml")
                locs = "".join(f"<url><loc>{u}</loc></url>" for u in (
                    f"{site.base}/from-sitemap", f"{site.base}/docs/in-sitemap", "http://elsewhere.test/no"))
                self.finish(f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                            f"{locs}</urlset>")

        class Page(tornado.web.RequestHandler):
            async def get(self, path: str) -> None:
                site.hits[self.request.uri] += 1
                site.page_starts.append(time.monotonic())
                if slow and self.request.path != "/":
                    await site.release.wait()
                links = GRAPH.get(self.request.path, [])
                anchors = "".join(f'<a href="{href.format(port=site.port)}">{href}</a>' for href in links)
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(f"<html><head><title>{path}</title></head><body><p>{path}</p>{anchors}</body></html>")

        self.server = HTTPServer(tornado.web.Application([
            (r"/robots\.txt", Robots), (r"/sitemap\.xml", Sitemap), (r"/(.*)", Page)]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self.release.set()
        self.server.stop()


class GeneratedSite:
    """A site of `pages` pages made on the fly: /g/N links to /g/(N*fanout+1) ... /g/(N*fanout+fanout) (those below
    `pages`), to / and to itself with a fragment; each answer waits `delay` seconds. `hits` counts by path."""

    def __init__(self, pages: int, fanout: int = 4, delay: float = 0.0) -> None:
        self.hits: Counter[str] = Counter()
        site = self

        class Page(tornado.web.RequestHandler):
            async def get(self, number: str) -> None:
                site.hits[self.request.path] += 1
                if delay:
                    await asyncio.sleep(delay)
                n = int(number or 0)
                children = range(n * fanout + 1, min(n * fanout + fanout, pages - 1) + 1)
                anchors = "".join(f'<a href="/g/{c}">{c}</a>' for c in children)
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(f'<html><body><a href="/g/0">home</a><a href="#top">top</a>{anchors}</body></html>')

        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = HTTPServer(tornado.web.Application([(r"/g/(\d*)", Page)]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self.server.stop()
