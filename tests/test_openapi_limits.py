"""/openapi.json states the job fields' limits of the server that serves it, read from the fields' declarations."""

from __future__ import annotations

import pytest

from handlers.openapi_spec import openapi_document
from jobqueue.spec import FetchOptions, SpecLimits
from tests.helpers import Api


@pytest.mark.gen_test(timeout=30)
async def test_the_served_document_has_this_servers_min_every_and_max_body_size(make_server):
    server = await make_server(min_every=5.5, max_body_size=4096)
    code, doc = await Api(f"http://127.0.0.1:{server.port}").call("GET", "/openapi.json")
    assert code == 200
    schemas = doc["components"]["schemas"]
    every = schemas["Job"]["properties"]["every"]
    assert (every["minimum"], every["type"]) == (5.5, ["number", "null"])
    assert schemas["FetchOptions"]["properties"]["max_bytes"]["maximum"] == 4096
    code, body = await Api(f"http://127.0.0.1:{server.port}").call(
        "POST", "/jobqueue/api/v1.0/queue_tasks", {"url": "https://example.com/", "every": 5.4})
    assert code == 400 and "from 5.5 (this server's --min-every)" in body["error"]["message"]


def test_each_job_field_and_fetch_option_is_described_from_its_declaration():
    limits = SpecLimits(min_every=120)
    doc = openapi_document(False, limits)
    schemas = doc["components"]["schemas"]
    job = schemas["Job"]["properties"]
    assert {"url", "fetch", "priority", "not_before", "max_age", "tags", "every"} <= set(job)
    assert "webhook" not in job  # only with --webhook-secret: docs/API.md describes it
    assert job["every"]["minimum"] == 120 and job["priority"]["minimum"] == -10
    assert schemas["FetchOptions"]["properties"]["timeout"] == {
        "type": ["number", "null"], "minimum": 1, "maximum": 300,
        "description": "seconds for the whole fetch; default: the server's --fetch-timeout"}
    assert schemas["TaskFetch"]["required"] == list(FetchOptions().to_json())
    query = {p["name"]: p for p in doc["paths"]["/jobqueue/api/v1.0/queue_tasks"]["post"]["parameters"]}
    assert query["timeout"]["schema"] == {"type": "number", "minimum": 1, "maximum": 300}
    assert query["tag"]["explode"] is True and "every" not in query
