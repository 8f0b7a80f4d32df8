"""A bulk action's dry run, through the real server: it counts exactly what the action would match and
changes nothing, so a confirmation can give the server's number for the very request it will send."""

from __future__ import annotations

import pytest

from tests.helpers import API


async def post_bulk(api, payload):
    return await api.call("POST", f"{API}/queue_tasks/bulk", payload)


@pytest.mark.gen_test(timeout=60)
async def test_a_dry_run_counts_what_the_action_matches_and_changes_nothing(api, target):
    bad = await api.submit_many([f"http://127.0.0.1:9/refused/{i}" for i in range(3)])
    good = await api.submit_many([target.url(f"/page/{i}") for i in range(4)])
    before = {t["id"]: await api.wait_finished(t["id"]) for t in bad + good}
    cases = [({"action": "retry", "filter": {"host": "127.0.0.1", "status": "failed"}}, 3),
             ({"action": "retry", "filter": {"host": "127.0.0.1"}}, 7),
             ({"action": "delete", "filter": {"all": True}}, 7),
             ({"action": "cancel", "filter": {"all": True}}, 0)]
    for payload, matched in cases:
        code, body = await post_bulk(api, {**payload, "dry_run": True})
        assert code == 200 and body == {"action": payload["action"], "matched": matched, "changed": 0,
                                        "changed_ids": []}, payload
    for task_id, task in before.items():
        assert (await api.task(task_id))["updated_at"] == task["updated_at"]
    code, body = await post_bulk(api, {"action": "retry", "filter": {"status": "failed"}, "dry_run": False})
    assert code == 200 and {k: body[k] for k in ("action", "matched", "changed")} == {
        "action": "retry", "matched": 3, "changed": 3}
    assert sorted(body["changed_ids"]) == sorted(t["id"] for t in bad)


@pytest.mark.gen_test(timeout=30)
async def test_dry_run_must_be_a_boolean(api):
    for value in ("true", 1, None, []):
        code, body = await post_bulk(api, {"action": "retry", "filter": {"all": True}, "dry_run": value})
        assert code == 400 and body["error"]["code"] == "invalid_field", value
