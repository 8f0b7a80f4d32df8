"""Host slots through the real server (SQLite file): a host's due job is fetched behind a full host's backlog
however many hosts whose jobs all wait for later sort before it, and a job cancelled and retried while a worker
of another server on the same file still fetches it never lets more than --per-host requests reach its host."""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tests.helpers import API, Api, wait_for


class HeldSite:
    """A site on one loopback address: `/hold/<name>` answers once the test opens that gate (a request whose
    client hangs up stops counting at once); `/page/<name>` answers at once. It counts the requests open."""

    def __init__(self, address: str) -> None:
        self.arrived: list[str] = []
        self.open = 0
        self.most_open = 0
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        site = self

        class Held(tornado.web.RequestHandler):
            counted = False

            async def get(self, name: str) -> None:
                site.arrived.append(self.request.path)
                self.counted = True
                site.open += 1
                site.most_open = max(site.most_open, site.open)
                await site.gates[name].wait()
                self._done()
                self.finish("through")

            def on_connection_close(self) -> None:
                self._done()

            def _done(self) -> None:
                if self.counted:
                    self.counted = False
                    site.open -= 1

        class Page(tornado.web.RequestHandler):
            def get(self, _name: str) -> None:
                site.arrived.append(self.request.path)
                self.finish("ok")

        sockets = bind_sockets(0, address, family=socket.AF_INET)
        self.base = f"http://{address}:{sockets[0].getsockname()[1]}"
        self.server = HTTPServer(tornado.web.Application([(r"/hold/(\w+)", Held), (r"/page/(\w+)", Page)]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        for gate in self.gates.values():
            gate.set()
        self.server.stop()


async def submit(api: Api, payload: dict[str, object]) -> list[dict[str, object]]:
    code, body = await api.call("POST", f"{API}/queue_tasks", payload)
    assert code == 201, body
    return body["tasks"] if "tasks" in body else [body["task"]]


@pytest.mark.gen_test(timeout=90)
async def test_a_due_job_is_fetched_behind_a_full_hosts_backlog_and_many_hosts_with_nothing_due(make_server):
    crawl, other = HeldSite("127.0.0.1"), HeldSite("127.0.0.2")
    server = await make_server(workers=2, per_host=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        await submit(api, {"urls": [crawl.url(f"/hold/crawl{i}") for i in range(100)], "priority": 5})

        async def crawling() -> bool:
            return bool(crawl.arrived)

        await wait_for(crawling, 20, "the crawl to take its host's one slot")
        # 1,200 hosts, sorted before 127.0.0.2, whose jobs wait for later (as a schedule's next run or a backoff)
        later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for first in (0, 600):
            await submit(api, {"urls": [f"http://1-{i:04d}.invalid/" for i in range(first, first + 600)],
                               "not_before": later})
        await submit(api, {"url": other.url("/page/victim")})

        async def fetched() -> bool:
            return other.arrived == ["/page/victim"]

        await wait_for(fetched, 30, "the other host's job to be fetched while the crawl holds its slot")
        assert len(crawl.arrived) == 1
    finally:
        api.close()
        crawl.stop()
        other.stop()


@pytest.mark.gen_test(timeout=90)
async def test_a_job_retried_while_another_server_still_fetches_it_keeps_the_host_within_its_limit(make_server):
    site = HeldSite("127.0.0.1")
    first = await make_server(workers=4, per_host=2)
    api_first = Api(f"http://127.0.0.1:{first.port}")
    api_second = None
    try:
        [job] = await submit(api_first, {"url": site.url("/hold/job")})

        async def fetching() -> bool:
            return site.arrived == ["/hold/job"]

        await wait_for(fetching, 20, "the first server to fetch the job")
        second = await make_server(workers=4, per_host=2)  # another server on the same file
        api_second = Api(f"http://127.0.0.1:{second.port}")
        code, body = await api_second.call("DELETE", f"{API}/queue_tasks/{job['id']}")
        assert code == 200, body
        code, body = await api_second.call("POST", f"{API}/queue_tasks/{job['id']}/retry")
        assert code == 200, body

        async def retried() -> bool:
            return site.arrived == ["/hold/job", "/hold/job"]

        # the first server learns of the cancel at its next heartbeat: until then its request runs on, and it
        # and the retry's hold the host's two slots
        await wait_for(retried, 20, "the retry to be fetched")
        await submit(api_second, {"url": site.url("/hold/next")})

        async def next_started() -> bool:
            return "/hold/next" in site.arrived

        await wait_for(next_started, 30, "the next job to start once the first server stopped its request")
        for _ in range(5):
            await asyncio.sleep(0)  # the site handles a hang-up it was told of before the next request came
        assert site.most_open == 2
    finally:
        api_first.close()
        if api_second is not None:
            api_second.close()
        site.stop()
