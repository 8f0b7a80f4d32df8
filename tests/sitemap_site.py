"""A site on 127.0.0.1 that serves whatever files a test gives it (robots.txt, sitemaps, pages) and counts hits."""

from __future__ import annotations

import gzip
import socket

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

XML = "application/xml"
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str) -> bytes:
    """A sitemap listing `locs`."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>\n'
            + "".join(f"  <url><loc>{loc}</loc><lastmod>2024-01-01</lastmod></url>\n" for loc in locs)
            + "</urlset>\n").encode()


def sitemap_index(*locs: str) -> bytes:
    """A sitemap index listing the sitemaps `locs`."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex {NS}>\n'
            + "".join(f"  <sitemap><loc>{loc}</loc></sitemap>\n" for loc in locs) + "</sitemapindex>\n").encode()


def gzip_bomb(inflated: int) -> bytes:
    """A gzipped sitemap whose first URL is /bomb-first and which inflates to `inflated` bytes of blank space."""
    head = urlset("/bomb-first").replace(b"</urlset>\n", b"")
    compressor = gzip.GzipFile(fileobj=(buffer := _Buffer()), mode="wb", mtime=0)
    compressor.write(head)
    block = b" " * (1024 * 1024)
    for _ in range(inflated // len(block)):
        compressor.write(block)
    compressor.close()
    return bytes(buffer.data)


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)

    def flush(self) -> None:
        pass


class Site:
    """Serves `files` ({path: (status, content type, body, extra headers)}); any other path is a 404."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        self.hits: list[str] = []
        site = self

        class Handler(tornado.web.RequestHandler):
            def get(self) -> None:
                site.hits.append(self.request.path)
                found = site.files.get(self.request.path)
                if found is None:
                    self.set_status(404)
                    self.finish("not here")
                    return
                status, content_type, body, headers = found
                self.set_status(status)
                self.set_header("Content-Type", content_type)
                for name, value in headers.items():
                    self.set_header(name, value)
                self.finish(body)

        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self.server = HTTPServer(tornado.web.Application([(r"/.*", Handler)]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes | str, content_type: str = XML, status: int = 200, raw: bool = False,
              **headers: str) -> None:
        """Serve `body` at `path`, `{base}` in it replaced by the site's address unless `raw`."""
        data = body.encode() if isinstance(body, str) else body
        if not raw:
            data = data.replace(b"{base}", self.base.encode())
        self.files[path] = (status, content_type, data, {k.replace("_", "-"): v for k, v in headers.items()})

    def stop(self) -> None:
        self.server.stop()
