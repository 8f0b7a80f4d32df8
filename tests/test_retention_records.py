"""Retention on SQLite, through the real server: what expired jobs leave behind goes with them, as on MongoDB
(tests/test_mongodb_retention.py): a sealed batch once its last job is deleted, webhook deliveries delivered
or failed for good and url.changed records made before the cutoff. Pending deliveries stay whatever their age.
"""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from jobqueue.history.retention import DAY
from jobqueue.spec import JobSpec
from jobqueue.store.sqlite.store import SQLiteStore
from jobqueue.webhooks.delivery import DELIVERED, FAILED, PENDING
from jobqueue.webhooks.outbox import Outbox
from tests.helpers import API, Api, wait_for
from tests.store_backends import FakeClock
from tests.test_store_contract_retention import WATCHED, finished_batch, run, settle

HOOK = "http://127.0.0.1:9/hook"  # loopback, nothing listens: a pending delivery stays pending


@pytest.mark.gen_test(timeout=60)
async def test_the_server_on_sqlite_purges_them_in_its_housekeeping_round(make_server, tmp_path):
    path = os.path.join(str(tmp_path), "jobqueue.db")
    earlier = SQLiteStore(path, clock=FakeClock(time.time() - 3 * DAY))
    await earlier.open()
    earlier.outbox = Outbox(HOOK)
    batch_id = await finished_batch(earlier, "https://example.com/old")
    await run(earlier, JobSpec(every=60.0), WATCHED, b"one")
    earlier.clock.advance(60.0)
    await run(earlier, url=WATCHED, body=b"two")  # a changed body: a url.changed record
    statuses = await settle(earlier, [DELIVERED, FAILED])
    assert sorted(statuses.values()) == [DELIVERED, FAILED] + [PENDING] * (len(statuses) - 2)
    await earlier.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM url_changes").fetchone() == (1,)

    server = await make_server(database=f"sqlite:///{path}", retention_days=1.0)
    await server.pool.stop()  # the schedule's next run stays queued: nothing off this machine is fetched
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        async def purged() -> bool:
            code, body = await api.call("GET", f"{API}/webhook_deliveries?limit=100")
            assert code == 200, body
            return {d["status"] for d in body["deliveries"]} == {PENDING}

        await wait_for(purged, 20, "retention to delete the finished deliveries")
        code, body = await api.call("GET", f"{API}/batches/{batch_id}")
        assert code == 404, body
        code, body = await api.call("GET", f"{API}/webhook_deliveries?limit=100")
        assert len(body["deliveries"]) == len(statuses) - 2  # the pending ones stay, however old
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM url_changes").fetchone() == (0,)
    finally:
        api.close()
