"""A store is built with its hooks: the webhook outbox and the word that a recurring page changed."""

from __future__ import annotations

import pytest

from jobqueue.store import store_from_url
from jobqueue.webhooks.outbox import Outbox


@pytest.mark.parametrize("url", ["sqlite:///hooks.db", "mongodb://127.0.0.1:1/jobqueue_hooks"])
def test_store_from_url_gives_the_backend_its_hooks_before_it_opens(url):
    """Nothing set after the fact: what a store writes with its first change is what it was built with."""
    if url.startswith("mongodb"):
        pytest.importorskip("motor")
    outbox, heard = Outbox("https://hooks.example/all"), []
    store = store_from_url(url, outbox=outbox, url_changed=lambda task, previous: heard.append(task))
    assert store.outbox is outbox and store.url_changed is not None
    store.url_changed("run", "previous")
    assert heard == ["run"]
    bare = store_from_url(url)
    assert bare.outbox is None and bare.url_changed is None
