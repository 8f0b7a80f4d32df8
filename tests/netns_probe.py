"""Runs inside a network namespace with only loopback: submits non-loopback targets with the guard on.

Started by test_netns.py as `unshare -nm sh -c '... python -m tests.netns_probe DBDIR'`; prints one
JSON line with each task's final state. Even a broken guard could not reach out from here.
"""

from __future__ import annotations

import asyncio
import json
import sys

from jobqueue.config import Settings
from server import JobQueueServer
from tests.helpers import Api, wait_for
from tests.target import Target

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a test key: 24 bytes of base64


async def probe(db_dir: str) -> dict[str, object]:
    target = Target()
    server = JobQueueServer(Settings(port=0, database=f"sqlite:///{db_dir}/netns.db", allow_networks=("127.0.0.1/32",),
                                     max_attempts=1, connect_timeout=2, fetch_timeout=4,
                                     webhook_secret=SECRET, webhook_timeout=2))
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    urls = {
        "name_to_10.0.0.1": "http://internal.test/",
        "name_to_metadata": "http://metadata.test/latest/meta-data/",
        "redirect_to_metadata": target.url("/redirect-to?url=http://169.254.169.254/latest/meta-data/"),
        "redirect_to_10.0.0.1": target.url("/redirect-to?url=http://10.0.0.1:8080/"),
        "redirect_to_name_to_10": target.url("/redirect-to?url=http://internal.test/"),
    }
    out: dict[str, object] = {}
    try:
        for name, url in urls.items():
            task = await api.submit(url)
            out[name] = await api.wait_finished(task["id"], timeout=20)
        for literal in ("http://10.0.0.1/", "http://169.254.169.254/"):
            code, body = await api.call("POST", "/jobqueue/api/v1.0/queue_tasks", {"url": literal})
            out[literal] = {"http": code, "body": body}
        for hook in ("http://10.0.0.1/hook", "http://169.254.169.254/hook"):
            code, body = await api.call("POST", "/jobqueue/api/v1.0/queue_tasks",
                                        {"url": target.url("/"), "webhook": {"url": hook}})
            out[f"webhook {hook}"] = {"http": code, "body": body}
        for name, hook in (("webhook_name_to_10", "http://internal.test/hook"),
                           ("webhook_name_to_metadata", "http://metadata.test/hook")):
            code, body = await api.call("POST", "/jobqueue/api/v1.0/queue_tasks",
                                        {"url": target.url("/"), "webhook": {"url": hook}})
            task_id = body["task"]["id"]
            await api.wait_finished(task_id, timeout=20)
            out[name] = await wait_for(lambda task_id=task_id: _finished_delivery(api, task_id), 20, "a delivery")
    finally:
        api.close()
        await server.stop()
        target.stop()
    return out


async def _finished_delivery(api: Api, task_id: str) -> dict[str, object] | None:
    _, body = await api.call("GET", f"/jobqueue/api/v1.0/webhook_deliveries?task_id={task_id}")
    found = body["deliveries"]
    return found[0] if found and found[0]["status"] != "pending" else None


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1]))))
