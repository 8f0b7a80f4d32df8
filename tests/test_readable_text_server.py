"""Main text where text matters, through a real server: `q`, `changed_on: text`, `diff?view=text`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import API, Api, wait_for
from tests.test_readable_text import article  # noqa: F401  (the article fixture)
from tests.test_webhooks import FAST, SECRET, receiver  # noqa: F401  (the receiver fixture)


@pytest.mark.gen_test(timeout=90)
async def test_q_finds_a_page_by_its_article_not_its_navigation(make_server, article):  # noqa: F811
    server = await make_server()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        task = await api.submit(article.url)
        assert (await api.wait_finished(task["id"]))["status"] == "completed"

        async def found() -> list | None:
            code, listed = await api.call("GET", f"{API}/queue_tasks?q=giraffe")
            assert code == 200, listed
            return listed["tasks"] or None

        assert [t["id"] for t in await wait_for(found, 20, "the page to be indexed")] == [task["id"]]
        for word in ("zebra", "sightings", "copyright"):
            code, listed = await api.call("GET", f"{API}/queue_tasks?q={word}")
            assert code == 200 and listed["tasks"] == [], (word, listed)
    finally:
        api.close()


@pytest.mark.gen_test(timeout=90)
async def test_diff_view_text_compares_the_articles_not_the_footers(make_server, article):  # noqa: F811
    server = await make_server()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        ids = []
        for stamp, word in (("10:00", "giraffe"), ("10:05", "giraffe"), ("10:10", "elephant")):
            article.stamp, article.word = stamp, word
            ids.append((await api.submit(article.url))["id"])
            assert (await api.wait_finished(ids[-1]))["status"] == "completed"
        code, body_diff = await api.call("GET", f"{API}/results/{ids[1]}/diff?against={ids[0]}")
        assert code == 200 and "10:05" in body_diff["diff"], body_diff
        code, same = await api.call("GET", f"{API}/results/{ids[1]}/diff?against={ids[0]}&view=text")
        assert code == 200 and (same["same_text"], same["diff"]) == (True, ""), same
        code, changed = await api.call("GET", f"{API}/results/{ids[2]}/diff?against={ids[1]}&view=text")
        assert code == 200 and "+The elephant report\n" in changed["diff"], changed
        assert "10:10" not in changed["diff"] and "Zebra" not in changed["diff"]
        code, bad = await api.call("GET", f"{API}/results/{ids[2]}/diff?against={ids[1]}&view=words")
        assert code == 400 and "view" in bad["error"]["message"], bad
    finally:
        api.close()


@pytest.mark.gen_test(timeout=120)
async def test_changed_on_text_ignores_a_footer_timestamp_and_reports_an_article_change(
        make_server, article, receiver):  # noqa: F811
    server = await make_server(webhook_secret=SECRET, webhook_retry_delays=FAST, min_every=0.2,
                               webhook_url=receiver.url("all"))
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": article.url, "every": 0.2,
                                                                  "changed_on": "text"})
        assert code == 201, body
        schedule_id = body["task"]["schedule_id"]

        async def runs(n: int) -> list[dict] | None:
            code, page = await api.call("GET", f"{API}/history?url={article.url}")
            return page["results"] if code == 200 and len(page["results"]) >= n else None

        done = len(await wait_for(lambda: runs(1), 20, "the first run"))
        for minute in range(1, 4):  # only the footer's timestamp changes: three changed bodies
            article.stamp = f"10:0{minute}"
            # two more runs: the second surely fetched the new footer (the first may have been under way)
            done = len(await wait_for(lambda n=done + 2: runs(n), 20, "runs of the new footer"))
        history = await runs(done)
        assert history is not None and sum(bool(r["changed"]) for r in history) >= 3  # the bodies did change

        def changes() -> list[dict]:
            return [r.json for r in receiver.got("all") if r.json["type"] == "url.changed"]

        assert changes() == []
        article.word = "elephant"
        [change, *_] = await wait_for(lambda: _async(changes), 20, "a url.changed delivery")
        assert change["data"]["task"]["schedule_id"] == schedule_id
        code, diff = await api.call("GET", f"{API}/results/{change['data']['task']['id']}/diff"
                                          f"?against={change['data']['previous_id']}&view=text")
        assert code == 200 and "+The elephant report\n" in diff["diff"], json.dumps(diff)[:500]
        assert (await api.call("DELETE", f"{API}/schedules/{schedule_id}"))[0] == 200
    finally:
        api.close()


async def _async(probe: Any) -> Any:
    return probe() or None
