"""robots.txt through the real server (SQLite file) and real sites on 127.0.0.1: a job with `"robots": "obey"` (or
any job under --robots=obey) is checked before its fetch, a disallowed URL fails blocked_by_robots and never
reaches the site; robots.txt is fetched once per origin, by one server or two on the same file; a 404 allows
everything and a 500 nothing; wildcards, `$` and the longest match hold for the product token; Crawl-delay and
Sitemap lines are kept for crawls."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jobqueue.robots import RobotsFacts, robots_origin
from tests.helpers import API, Api

DISALLOW_PRIVATE = "User-agent: *\nDisallow: /private\n"
RULES = ("User-agent: other-bot\nDisallow: /\n\n"
         "User-agent: jobqueue\nDisallow: /*.pdf$\nDisallow: /docs\nAllow: /docs/public\n"
         "Crawl-delay: 2.5\n\nSitemap: http://example.com/sitemap.xml\nSitemap: http://example.com/news.xml\n")


class RobotsSite:
    """A site on its own port whose /robots.txt answers `status` with `body` (or redirects to /real-robots.txt
    when `redirect`); every other path answers 200. It counts the requests per path."""

    def __init__(self, body: str = "", status: int = 200, redirect: bool = False) -> None:
        self.hits: list[str] = []
        site = self

        class Robots(tornado.web.RequestHandler):
            def get(self) -> None:
                site.hits.append(self.request.path)
                if redirect and self.request.path == "/robots.txt":
                    self.redirect("/real-robots.txt", status=301)
                    return
                self.set_status(status)
                self.set_header("Content-Type", "text/plain")
                self.finish(body)

        class Page(tornado.web.RequestHandler):
            def get(self, path: str) -> None:
                site.hits.append(self.request.uri)
                self.finish(f"<html><p>{path}</p></html>")

        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self.server = HTTPServer(tornado.web.Application([(r"/(?:real-)?robots\.txt", Robots), (r"/(.*)", Page)]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        return self.base + path

    def robots_fetches(self) -> int:
        return sum(1 for path in self.hits if path == "/robots.txt")

    def stop(self) -> None:
        self.server.stop()


async def run(api: Api, urls: list[str], **spec: Any) -> list[dict[str, Any]]:
    """Submit jobs and wait until each is finished: their final JSON, in order."""
    code, body = await api.call("POST", f"{API}/queue_tasks", {"urls": urls, **spec})
    assert code == 201, body
    return [await api.wait_finished(task["id"], timeout=30) for task in body["tasks"]]


def outcomes(tasks: list[dict[str, Any]]) -> list[str]:
    return [task["status"] if task["error"] is None else task["error"]["code"] for task in tasks]


@pytest.mark.gen_test(timeout=90)
async def test_a_disallowed_url_is_blocked_with_robots_obey_and_fetched_without(make_server):
    site = RobotsSite(DISALLOW_PRIVATE)
    server = await make_server()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        [blocked] = await run(api, [site.url("/private/a")], robots="obey")
        assert blocked["status"] == "failed" and blocked["error"]["code"] == "blocked_by_robots"
        assert blocked["robots"] == "obey" and blocked["attempts"] == 1  # not retried
        assert "/private/a" not in site.hits
        [allowed] = await run(api, [site.url("/public")], robots="obey")
        assert allowed["status"] == "completed"
        ignored = await run(api, [site.url("/private/b"), site.url("/private/c")])  # the default: ignore
        ignored += await run(api, [site.url("/private/d")], robots="ignore")
        assert outcomes(ignored) == ["completed"] * 3 and "/private/d" in site.hits
        assert site.robots_fetches() == 1  # read for the jobs that obey it only
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": site.url("/x"), "robots": "always"})
        assert code == 400 and body["error"]["code"] == "invalid_field"
    finally:
        api.close()
        site.stop()


@pytest.mark.gen_test(timeout=90)
async def test_robots_txt_is_fetched_once_per_origin_by_many_jobs_and_by_two_servers_on_one_file(make_server):
    site, other = RobotsSite(DISALLOW_PRIVATE), RobotsSite(DISALLOW_PRIVATE)
    first = await make_server(workers=8)
    second = await make_server(workers=8)  # another server on the same database file
    api_first, api_second = Api(f"http://127.0.0.1:{first.port}"), Api(f"http://127.0.0.1:{second.port}")
    try:
        urls = [site.url(f"/page{i}") for i in range(15)] + [site.url(f"/private/{i}") for i in range(5)]
        tasks = await run(api_first, urls, robots="obey")
        assert outcomes(tasks) == ["completed"] * 15 + ["blocked_by_robots"] * 5
        assert site.robots_fetches() == 1
        tasks = await run(api_second, [site.url(f"/again{i}") for i in range(10)] + [site.url("/private/z")],
                          robots="obey")
        assert outcomes(tasks) == ["completed"] * 10 + ["blocked_by_robots"]
        assert site.robots_fetches() == 1  # the second server read the first one's copy from the database
        tasks = await run(api_second, [site.url("/b"), other.url("/a"), other.url("/private/a")], robots="obey")
        assert outcomes(tasks) == ["completed", "completed", "blocked_by_robots"]
        assert (site.robots_fetches(), other.robots_fetches()) == (1, 1)  # kept per origin (host and port)
        assert first.robots.fetches + second.robots.fetches == 2
    finally:
        api_first.close()
        api_second.close()
        site.stop()
        other.stop()


@pytest.mark.gen_test(timeout=90)
async def test_a_404_allows_everything_and_a_500_nothing(make_server):
    missing, broken = RobotsSite("Disallow: /", status=404), RobotsSite("", status=500)
    server = await make_server()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        assert outcomes(await run(api, [missing.url("/a"), missing.url("/private")], robots="obey")) == [
            "completed", "completed"]
        tasks = await run(api, [broken.url("/a"), broken.url("/b")], robots="obey")
        assert outcomes(tasks) == ["blocked_by_robots"] * 2 and broken.hits == ["/robots.txt"]
        assert outcomes(await run(api, [broken.url("/a")])) == ["completed"]  # a job that does not obey: fetched
        assert missing.robots_fetches() == 1 and broken.robots_fetches() == 1  # kept for the period
    finally:
        api.close()
        missing.stop()
        broken.stop()


@pytest.mark.gen_test(timeout=90)
async def test_wildcards_dollar_and_longest_match_for_the_product_token_and_redirects_followed(make_server):
    site = RobotsSite(RULES, redirect=True)  # robots.txt answers 301 to /real-robots.txt
    server = await make_server(robots="obey")  # the server's default: jobs without `robots` obey
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        paths = ["/a.pdf", "/a.pdf?download=1", "/docs/intro", "/docs/public/guide", "/other", "/a.pdf/x"]
        tasks = await run(api, [site.url(path) for path in paths])
        assert outcomes(tasks) == ["blocked_by_robots", "completed", "blocked_by_robots", "completed", "completed",
                                   "completed"]
        assert outcomes(await run(api, [site.url("/docs/intro")], robots="ignore")) == ["completed"]
        assert site.hits.count("/real-robots.txt") == 1 and site.robots_fetches() == 1
        facts = await server.robots.facts(site.url("/anything"))
        assert facts == RobotsFacts(2.5, ("http://example.com/sitemap.xml", "http://example.com/news.xml"))
        assert robots_origin(site.url("/x?y")) == site.base and robots_origin("HTTPS://Example.COM:443/a") == (
            "https://example.com")
    finally:
        api.close()
        site.stop()


@pytest.mark.gen_test(timeout=90)
async def test_another_product_token_gets_its_own_group(make_server):
    site = RobotsSite(RULES)
    server = await make_server(robots="obey", robots_user_agent="other-bot")
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        assert outcomes(await run(api, [site.url("/other")])) == ["blocked_by_robots"]
        assert (await server.robots.facts(site.url("/"))).crawl_delay is None
    finally:
        api.close()
        site.stop()
