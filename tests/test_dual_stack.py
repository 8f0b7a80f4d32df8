"""A name with a refused address beside an allowed one: what curl skipped is no failure.

libcurl resolves `localhost` itself to ::1 and 127.0.0.1 and tries ::1 first. With the guard refusing
loopback IPv6 only (`--allow-network=127.0.0.0/8`), curl is refused ::1 and falls back to 127.0.0.1,
where the target and the receiver listen: the request is answered, so it must count as answered.
"""

from __future__ import annotations

import socket

import pytest

from jobqueue.addresses import AddressPolicy
from tests.helpers import API, Api, wait_for
from tests.test_webhooks import SECRET, settled
from tests.webhook_receiver import Receiver

IPV4_LOOPBACK_ONLY = {"allow_private_addresses": False, "allow_networks": ("127.0.0.0/8",)}


def test_the_configuration_refuses_loopback_ipv6_only():
    policy = AddressPolicy.build(False, IPV4_LOOPBACK_ONLY["allow_networks"])
    assert policy.allows("127.0.0.1") and not policy.allows("::1")
    assert not policy.refuses_host("localhost")


@pytest.fixture
def receiver(io_loop):
    hooks = io_loop.run_sync(lambda: _async(Receiver))
    yield hooks
    hooks.stop()


async def _async(factory):
    return factory()


@pytest.mark.gen_test(timeout=60)
async def test_a_job_whose_name_also_resolves_to_a_refused_address_completes(make_server, target):
    server = await make_server(**IPV4_LOOPBACK_ONLY)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        plain = await api.submit(f"http://localhost:{target.port}/utf8")
        code, body = await api.call("POST", f"{API}/queue_tasks", {  # hops followed one by one by the fetcher
            "url": f"http://localhost:{target.port}/redirect/2", "fetch": {"headers": {"X-Key": "1"}}})
        assert code == 201, body
        for task_id in (plain["id"], body["task"]["id"]):
            done = await api.wait_finished(task_id)
            assert done["status"] == "completed" and done["http_status"] == 200, done
        # a hop with no allowed address is still refused, after an allowed one answered
        trap = socket.socket(socket.AF_INET6)
        trap.bind(("::1", 0))
        trap.listen()
        try:
            task = await api.submit(target.url(f"/redirect-to?url=http://[::1]:{trap.getsockname()[1]}/"))
            done = await api.wait_finished(task["id"])
            assert done["status"] == "failed" and done["error"]["code"] == "blocked", done
        finally:
            trap.close()
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_webhook_whose_name_also_resolves_to_a_refused_address_is_delivered(make_server, target, receiver):
    server = await make_server(webhook_secret=SECRET, webhook_retry_delays="0.05,0.05,0.05", **IPV4_LOOPBACK_ONLY)
    api = Api(f"http://127.0.0.1:{server.port}")
    hook = f"http://localhost:{receiver.port}/hook/dual"
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "webhook": hook})
        assert code == 201, body
        [delivery] = await settled(api, body["task"]["id"])
        assert delivery["attempts"] == 1 and delivery["last_http_status"] == 200, delivery
        assert len(receiver.got("dual")) == 1

        async def one_received() -> bool:
            return len(receiver.got("dual")) == 1
        await wait_for(one_received, 5, "the receiver to have its one delivery")
    finally:
        api.close()
