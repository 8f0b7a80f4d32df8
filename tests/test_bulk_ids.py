"""Bulk actions on named jobs (a dashboard's selection), through the real server: exactly the jobs named (in a
state the action applies to) change, the answer names the jobs changed so a client can undo, and bad lists are
clear 400s."""

from __future__ import annotations

import pytest

from tests.helpers import API


async def bulk(api, payload):
    return await api.call("POST", f"{API}/queue_tasks/bulk", payload)


@pytest.mark.gen_test(timeout=60)
async def test_a_selection_acts_on_exactly_the_jobs_named_and_can_be_undone(api):
    tasks = await api.submit_many([f"http://127.0.0.1:9/refused/{i}" for i in range(6)])
    finished = [await api.wait_finished(t["id"]) for t in tasks]
    assert {t["status"] for t in finished} == {"failed"}
    chosen = [t["id"] for t in tasks[:3]]
    code, body = await bulk(api, {"action": "retry", "ids": chosen, "dry_run": True})
    assert code == 200 and body["matched"] == 3 and body["changed"] == 0
    code, body = await bulk(api, {"action": "retry", "ids": [*chosen, chosen[0], "nosuchjob"]})
    assert code == 200 and body["matched"] == 3 and sorted(body["changed_ids"]) == sorted(chosen)
    for before in finished[3:]:
        assert (await api.task(before["id"]))["updated_at"] == before["updated_at"]  # the others were left alone
    code, undo = await bulk(api, {"action": "cancel", "ids": body["changed_ids"]})
    assert code == 200 and undo["changed"] == len(undo["changed_ids"]) <= 3  # some may have failed again already


@pytest.mark.gen_test(timeout=30)
async def test_bad_id_lists_are_refused_clearly(api):
    cases = [({"action": "retry", "ids": []}, "invalid_field"),
             ({"action": "retry", "ids": ["x"] * 1001}, "invalid_field"),
             ({"action": "retry", "ids": ["bad id"]}, "invalid_field"),
             ({"action": "retry", "ids": "abc"}, "invalid_field"),
             ({"action": "retry", "ids": ["abc"], "filter": {"status": "failed"}}, "invalid_request")]
    for payload, code_word in cases:
        code, body = await bulk(api, payload)
        assert code == 400 and body["error"]["code"] == code_word, payload
