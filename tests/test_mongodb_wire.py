"""What the MongoDB store puts on the wire: each command's maxTimeMS and writeConcern, as PyMongo sends them.

PyMongo's client-side operation timeout (the client's timeoutMS) rewrites commands only as it sends
them: `maxTimeMS` becomes the time left of the operation's limit, and a write concern's `wtimeout` is
dropped. So these tests run the store, and the whole service, against tests/mongo_wire.py, a fake
server on 127.0.0.1 that records every command it receives (it stores nothing: its finds are empty).
"""

from __future__ import annotations

import pytest

from jobqueue.models import TaskIds
from jobqueue.store.base import NewTask, StoreError
from jobqueue.store.mongodb.claims import CLAIM_MAX_TIME_MS
from jobqueue.store.mongodb.connect import OPERATION_TIMEOUT_MS
from jobqueue.store.mongodb.filters import MAX_TIME_MS
from jobqueue.store.mongodb.store import MongoStore
from tests.helpers import API, Api, wait_for
from tests.mongo_wire import WireServer

IDS = TaskIds()


@pytest.fixture
def wire():
    server = WireServer().start()
    yield server
    server.stop()


def claims(wire: WireServer) -> list[dict]:
    return [c for c in wire.commands("find", "jobs") if c.get("hint") == "due_by_host"]


@pytest.mark.gen_test(timeout=30)
async def test_a_claim_is_capped_at_two_seconds_and_migrations_are_not_cut_at_the_operation_limit(wire):
    store = MongoStore(wire.url())
    await store.open()
    try:
        assert await store.claim(4, 30.0, []) == []
    finally:
        await store.close()
    [claim] = claims(wire)
    assert 0 < claim["maxTimeMS"] <= CLAIM_MAX_TIME_MS  # was 29999: the client's 30 s replaced the cursor's 2 s
    built = wire.commands("createIndexes")
    assert built and all(c["maxTimeMS"] > 3600 * 1000 for c in built)  # was 29999: a big build was aborted
    assert min(c["maxTimeMS"] for c in wire.commands("listIndexes")) > OPERATION_TIMEOUT_MS


@pytest.mark.gen_test(timeout=30)
async def test_the_urls_wtimeout_reaches_the_wire_and_the_default_client_still_bounds_every_operation(wire):
    store = MongoStore(wire.url("kept", "w=1&wtimeoutMS=5000"))
    await store.open()
    try:
        await store.add([NewTask(IDS.new(), "https://example.com/", "example.com")])
        await store.claim(1, 30.0, [])
    finally:
        await store.close()
    [insert] = wire.commands("insert", "jobs")
    assert insert["writeConcern"] == {"w": 1, "wtimeout": 5000, "j": True}  # was {"w": 1, "j": True}
    assert 0 < claims(wire)[-1]["maxTimeMS"] <= CLAIM_MAX_TIME_MS

    plain = MongoStore(wire.url("plain"))
    await plain.open()
    try:
        await plain.add([NewTask(IDS.new(), "https://example.com/", "example.com")])
    finally:
        await plain.close()
    [insert] = wire.commands("insert", "jobs")[1:]
    assert insert["writeConcern"] == {"w": "majority", "j": True}
    assert 0 < insert["maxTimeMS"] <= OPERATION_TIMEOUT_MS  # timeoutMS: no write waits for ever


@pytest.mark.gen_test(timeout=30)
async def test_a_url_with_both_timeouts_is_refused_as_one_would_be_ignored(wire):
    store = MongoStore(wire.url("both", "timeoutMS=9000&wtimeoutMS=5000"))
    with pytest.raises(StoreError, match="both timeoutMS and wtimeoutMS"):
        await store.open()
    assert not wire.commands("insert")


@pytest.mark.gen_test(timeout=60)
async def test_the_service_on_mongodb_sends_capped_claims_long_migrations_and_the_urls_wtimeout(wire, make_server):
    server = await make_server(database=wire.url("service", "w=1&wtimeoutMS=5000"))
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": "https://example.com/page"})
        assert code == 201, body

        async def claimed() -> list[dict]:
            return claims(wire)

        found = await wait_for(claimed, 20, "a worker's claim")
    finally:
        api.close()
    assert all(0 < c["maxTimeMS"] <= CLAIM_MAX_TIME_MS for c in found)
    assert all(c["maxTimeMS"] > 3600 * 1000 for c in wire.commands("createIndexes"))
    inserts = wire.commands("insert", "jobs")
    assert inserts and all(c["writeConcern"] == {"w": 1, "wtimeout": 5000, "j": True} for c in inserts)


@pytest.mark.gen_test(timeout=90)
async def test_a_filtered_listing_waits_for_a_server_that_went_away_instead_of_failing(wire, make_server):
    """Its 3 s cap bounds the driver's wait for a server too: it then waits as long as opening does."""
    server = await make_server(database=wire.url("outage"))
    api = Api(f"http://127.0.0.1:{server.port}")
    store = getattr(server.store, "_store", server.store)  # the MongoStore inside the timing wrapper
    waited: list[bool] = []
    wait = getattr(store, "_wait_for_server", None)

    async def back_while_waiting() -> None:  # the server comes back while the listing waits for one
        waited.append(True)
        wire.down = False
        await wait()

    store._wait_for_server = back_while_waiting
    try:
        wire.down = True
        code, body = await api.call("GET", f"{API}/queue_tasks?host=example.com")
    finally:
        wire.down = False
        api.close()
    assert code == 200, (waited, body)  # was 503: the listing gave up after 3 s, within an election
    assert body["tasks"] == [] and waited == [True]
    [*_, last] = [c for c in wire.commands("find", "jobs") if c.get("filter") == {"host": "example.com"}]
    assert 0 < last["maxTimeMS"] <= MAX_TIME_MS
