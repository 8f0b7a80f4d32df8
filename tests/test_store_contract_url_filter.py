"""The store contract for `?url=` and `?host=` beyond ASCII: every backend finds a URL stored in its ASCII
form (IDNA host, UTF-8 percent-escapes) by the text as typed, by its stored spelling, and by a host label.

Runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py.
"""

from __future__ import annotations

import pytest

from jobqueue.filters import TASK_FILTERS
from jobqueue.models import TaskIds
from jobqueue.store.base import NewTask, TaskFilter

IDS = TaskIds()
STORED = [("xn--bcher-kva.example", "/wiki/M%C3%BCller?q=stra%C3%9Fe"), ("xn--bcher-kva.example", "/other"),
          ("example.com", "/%E6%97%A5%E6%9C%AC"), ("example.com", "/Mueller")]


async def matching(store, **raw: str) -> list[int]:
    """Which of STORED a filter typed as in a query string finds (by position), newest first."""
    where = TaskFilter(**{name: TASK_FILTERS[name](value) for name, value in raw.items()})
    page = await store.list(where, 100, None)
    urls = [f"https://{host}{path}" for host, path in STORED]
    return [urls.index(task.url) for task in page.items]


@pytest.mark.gen_test
async def test_every_store_finds_ascii_stored_urls_by_the_typed_text(open_store):
    store = await open_store()
    for host, path in STORED:
        await store.add([NewTask(IDS.new(), f"https://{host}{path}", host)])
    assert await matching(store, url="Müller") == [0]
    assert await matching(store, url="M%C3%BCLLER") == [0]  # the stored spelling, ASCII in any case
    assert await matching(store, url="straße") == [0]
    assert await matching(store, url="bücher.example/wiki/Müller") == [0]
    assert await matching(store, url="https://BÜCHER.example/") == [1, 0]
    assert await matching(store, url="bücher") == [1, 0]
    assert await matching(store, url="日本") == [2]
    assert await matching(store, url="mueller") == [3]
    assert await matching(store, url="Müller", host="bücher.example") == [0]
    assert await matching(store, host="Bücher.example.") == [1, 0]
    assert await matching(store, url="wiki/Mü") == [0]  # a part of a character's escapes is still its escapes
