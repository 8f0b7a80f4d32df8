"""Finding jobs: every listing filter, alone and combined, paged, and bounded where no index serves it."""

from __future__ import annotations

import pytest

import jobqueue.store.sqlite.filters as sqlite_filters
from jobqueue.errors import BadRequest
from jobqueue.filters import TASK_FILTERS, http_range
from jobqueue.models import Result, TaskError, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask, TaskFilter
from tests.helpers import API, wait_for

IDS = TaskIds()


def new(host: str, path: str = "/", tags: tuple[str, ...] = ()) -> NewTask:
    return NewTask(IDS.new(), f"https://{host}{path}", host, JobSpec(tags=tags))


def result(task_id: str, status: int) -> Result:
    return Result(id=task_id, url="u", final_url="u", http_status=status, headers={}, content_type="text/plain",
                  encoding="utf-8", encoding_source="header", size=1, truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=b"x")


async def all_pages(store, where: TaskFilter, limit: int = 2) -> list[str]:
    found, cursor = [], None
    while True:
        page = await store.list(where, limit, cursor)
        found += [t.id for t in page.items]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def populate(store, clock):
    """Jobs across two hosts with tags, answers 200/404/503 and a failure; returns their ids by name."""
    made = {}
    for name, host, path, tags in (("a200", "a.example", "/Alpha", ("x",)), ("a404", "a.example", "/beta", ()),
                                   ("b503", "b.example", "/alpha/2", ("x", "y")), ("bfail", "b.example", "/c", ("y",)),
                                   ("aqueued", "a.example", "/d", ())):
        [task] = await store.add([new(host, path, tags)])
        made[name] = task.id
        clock.advance(10)
    for name, status in (("a200", 200), ("a404", 404), ("b503", 503)):
        [claimed] = await store.claim(1, 30, [h for h in ("a.example", "b.example")
                                                 if not made[name] or h != name_host(name)])
        assert claimed.id == made[name]
        await store.complete(Lease(claimed.id, claimed.lease_token), result(claimed.id, status))
    [claimed] = await store.claim(1, 30, ["a.example"])
    await store.fail(Lease(claimed.id, claimed.lease_token), TaskError("timeout", "slow"), None)
    return made


def name_host(name: str) -> str:
    return "a.example" if name.startswith("a") else "b.example"


@pytest.mark.gen_test
async def test_each_filter_alone_and_together_newest_first(open_store, clock):
    store = await open_store()
    if "host" not in store.capabilities.list_filters:
        pytest.skip(f"{store.name}: this backend does not declare the new listing filters yet")
    made = await populate(store, clock)
    ids = {v: k for k, v in made.items()}

    async def names(**where):
        return [ids[i] for i in await all_pages(store, TaskFilter(**where))]

    assert await names(host="a.example") == ["aqueued", "a404", "a200"]
    assert await names(tag="x") == ["b503", "a200"]
    assert await names(tag="y", host="b.example") == ["bfail", "b503"]
    assert await names(http_status="404") == ["a404"]
    assert await names(http_status="5xx") == ["b503"]
    assert await names(http_status="4xx", host="b.example") == []
    assert await names(error="timeout") == ["bfail"]
    assert await names(url="alpha") == ["b503", "a200"]  # substring, any case
    assert await names(status="completed", host="a.example") == ["a404", "a200"]
    t0 = "2027-01-15T08:00:00Z"  # FakeClock's start
    assert await names(since="2027-01-15T08:00:15Z") == ["aqueued", "bfail", "b503"]
    assert await names(until="2027-01-15T08:00:15Z") == ["a404", "a200"]
    assert await names(since=t0, until="2027-01-15T08:00:35Z", host="b.example") == ["bfail", "b503"]
    assert await names(since="2030-01-01T00:00:00Z") == []


@pytest.mark.gen_test
async def test_a_walk_stops_at_its_cap_with_a_cursor_that_goes_on(open_store, clock, monkeypatch):
    store = await open_store()
    if store.name != "sqlite":
        pytest.skip("the bounded walk is SQLite's")
    monkeypatch.setattr(sqlite_filters, "WINDOW", 10)
    monkeypatch.setattr(sqlite_filters, "SCAN_CAP", 30)
    rare = []
    for i in range(100):
        [task] = await store.add([new("a.example", f"/{i}", ("rare",) if i in (0, 40) else ())])
        if i in (0, 40):
            rare.append(task.id)
    first = await store.list(TaskFilter(tag="rare"), 10, None)
    assert first.items == [] and first.next_cursor is not None  # 30 rows read, no match among them, go on
    assert await all_pages(store, TaskFilter(tag="rare"), 10) == rare[::-1]


def test_parsers_refuse_bad_values_with_a_sentence():
    for name, raw in (("http_status", "600"), ("http_status", "4x"), ("host", "a b"), ("tag", "a b"),
                      ("error", "Timeout!"), ("since", "yesterday"), ("url", "a" * 201), ("q", "!!!"),
                      ("status", "done"), ("host", "")):
        with pytest.raises(BadRequest) as info:
            TASK_FILTERS[name](raw)
        assert info.value.code in ("invalid_filter", "invalid_status") and info.value.message, (name, raw)
    assert TASK_FILTERS["host"]("Example.COM.") == "example.com"
    assert TASK_FILTERS["http_status"]("4XX") == "4xx" and http_range("4xx") == (400, 499)
    assert http_range("404") == (404, 404)


@pytest.mark.gen_test(timeout=60)
async def test_the_api_filters_pages_and_keeps_the_filter_in_the_cursor(api, target):
    ok = await api.submit_many([target.url(f"/page/{i}") for i in range(3)])
    missing = await api.submit_many([target.url(f"/status/404?i={i}") for i in range(3)])
    for task in ok + missing:
        await api.wait_finished(task["id"])
    code, body = await api.call("GET", f"{API}/queue_tasks?http_status=4xx&limit=2")
    assert code == 200 and [t["id"] for t in body["tasks"]] == [t["id"] for t in missing[::-1][:2]]
    code, rest = await api.call("GET", f"{API}/queue_tasks?cursor={body['next']}")
    assert [t["id"] for t in rest["tasks"]] == [missing[0]["id"]] and rest["next"] is None
    code, body = await api.call("GET", f"{API}/queue_tasks?host=127.0.0.1&url=/page/&status=completed")
    assert {t["id"] for t in body["tasks"]} == {t["id"] for t in ok}
    code, body = await api.call("GET", f"{API}/results?http_status=404")
    assert code == 200 and {r["id"] for r in body["results"]} == {t["id"] for t in missing}
    for query, word in (("http_status=99", "invalid_filter"), ("since=soon", "invalid_filter"),
                        ("q=%21%21", "invalid_filter")):
        code, body = await api.call("GET", f"{API}/queue_tasks?{query}")
        assert code == 400 and body["error"]["code"] == word, body


@pytest.mark.gen_test(timeout=60)
async def test_q_finds_pages_by_their_words_once_indexed(jq, api, target):
    pages = {"utf8": target.url("/utf8"), "latin": target.url("/latin1-meta"), "plain": target.url("/page/3")}
    tasks = {name: await api.submit(url) for name, url in pages.items()}
    for task in tasks.values():
        await api.wait_finished(task["id"])
    words = ["CAF%C3%89", "gr%C3%BC%C3%9Fe"]  # the /utf8 page says "Grüße, café": in any case

    async def found():
        code, listed = await api.call("GET", f"{API}/queue_tasks?q={'%20'.join(words)}")
        assert code == 200, listed
        return listed["tasks"] or None

    hits = await wait_for(found, 10, "the page to be indexed")
    assert tasks["utf8"]["id"] in {t["id"] for t in hits}
    code, none = await api.call("GET", f"{API}/queue_tasks?q=zzyzx%20qqxjv")
    assert code == 200 and none["tasks"] == []
    code, accentless = await api.call("GET", f"{API}/queue_tasks?q=cafe")
    assert tasks["utf8"]["id"] in {t["id"] for t in accentless["tasks"]}
    code, mixed = await api.call("GET", f"{API}/results?q={words[0]}&host=nowhere.example")
    assert code == 200 and mixed["results"] == []


def test_page_text_drops_markup_scripts_and_binary_bodies():
    from jobqueue.text_index import page_text

    def stored(body: bytes, content_type: str) -> Result:
        return Result(id="x", url="u", final_url="u", http_status=200, headers={}, content_type=content_type,
                      encoding="utf-8", encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                      fetched_at=1.0, sha256="0" * 64, body=body)

    html = b"<html><script>var hidden = 1;</script><style>p{}</style><p>Caf\xc3\xa9 &amp; <b>tea</b></p></html>"
    assert page_text(stored(html, "text/html")) == "Caf\u00e9 & tea"
    assert page_text(stored(b"\x89PNG...", "image/png")) is None
    assert page_text(stored(b'{"a": "word"}', "application/json")) == '{"a": "word"}'
