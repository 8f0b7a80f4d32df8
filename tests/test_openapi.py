"""/openapi.json: a valid OpenAPI 3.1 document that covers every route, and the live server keeps to it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from handlers import make_app
from handlers.openapi_spec import openapi_document
from jobqueue.addresses import AddressPolicy
from jobqueue.config import Settings
from jobqueue.errors import BadRequest
from jobqueue.models import Batch, Task
from jobqueue.service import MAX_BATCH
from jobqueue.spec import FetchOptions, SpecLimits
from jobqueue.submission import SubmissionReader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_document_is_valid_openapi_3_1():
    for token_required in (False, True):
        validate(openapi_document(token_required))


def test_the_bearer_scheme_is_declared_only_where_it_applies():
    open_doc = openapi_document(False)
    assert "securitySchemes" not in open_doc["components"] and "security" not in open_doc
    guarded = openapi_document(True)
    assert guarded["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert guarded["security"] == [{"bearer": []}]
    public = {op["operationId"] for item in guarded["paths"].values() for op in item.values()
              if isinstance(op, dict) and op.get("security") == []}
    assert public == {"health", "openapi"}


def test_the_schemas_say_what_the_server_accepts():
    doc = openapi_document(False)
    submission = doc["components"]["schemas"]["Submission"]["oneOf"]
    one, many = submission[0]["properties"]["url"], submission[1]["properties"]["urls"]["items"]
    assert one["minLength"] == many["minLength"] == 1 and one["maxLength"] == many["maxLength"] == 2048
    post = doc["paths"]["/jobqueue/api/v1.0/queue_tasks"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "text/plain",
                                                   "application/x-www-form-urlencoded", "multipart/form-data"}
    assert {"400", "413", "415", "429", "503"} <= set(post["responses"])
    truncated = doc["components"]["schemas"]["Result"]["properties"]["truncated"]
    assert "always false" in truncated["description"] and "too_large" in truncated["description"]


def _validator(name: str) -> Draft202012Validator:
    """A validator for one component schema, its $refs resolved inside the served document."""
    doc = openapi_document(False)
    root = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


U = "https://example.com/"
# (body, accepted?) pairs at the edges of every job field; every URL is one the server takes.
SUBMISSIONS = [
    ({"url": U}, True), ({"urls": [U, U]}, True), ({"jobs": [{"url": U, "priority": 3, "tags": ["a:b", "c"]}]}, True),
    ({"url": U, "fetch": {"method": "POST", "body": "x=1", "headers": {"X-A": "1\tb", "Cookie": "c=d"}, "timeout": 1,
                          "max_bytes": 10, "follow_redirects": False, "user_agent": "bot/1"}}, True),
    ({"url": U, "fetch": None, "not_before": None, "max_age": None}, True),
    ({"url": U, "fetch": {"headers": None, "body": None, "user_agent": None, "timeout": None, "max_bytes": None,
                          "profile": None}}, True),
    ({"url": U, "max_age": 60, "not_before": "2026-01-01T00:00:00Z", "priority": -10, "tags": ["t"] * 10}, True),
    ({"urls": [U], "fetch": {"method": "HEAD", "timeout": 300}, "priority": 10}, True),
    ({"url": U, "priority": 11}, False), ({"url": U, "priority": -11}, False), ({"url": U, "priority": True}, False),
    ({"url": U, "tags": ["a b"]}, False), ({"url": U, "tags": ["t"] * 11}, False), ({"url": U, "tags": None}, False),
    ({"url": U, "tags": ["x" * 65]}, False), ({"url": U, "max_age": 0}, False),
    ({"url": U, "not_before": "soon"}, False),
    ({"url": U, "fetch": {"method": "PUT"}}, False), ({"url": U, "fetch": {"timeout": 0.5}}, False),
    ({"url": U, "fetch": {"timeout": 301}}, False), ({"url": U, "fetch": {"max_bytes": 0}}, False),
    ({"url": U, "fetch": {"follow_redirects": None}}, False), ({"url": U, "fetch": {"colour": 1}}, False),
    ({"url": U, "fetch": {"headers": {"hOsT": "x"}}}, False), ({"url": U, "fetch": {"headers": {"A B": "x"}}}, False),
    ({"url": U, "fetch": {"headers": {"X-A": "a\nb"}}}, False),
    ({"url": U, "fetch": {"headers": {f"X-{i}": "v" for i in range(51)}}}, False),
    ({"url": U, "fetch": {"user_agent": ""}}, False), ({"url": U, "every": 60}, True), ({"url": U, "every": 59}, False),
    ({"url": U, "webhook": {"url": U}}, False), ({"url": U, "colour": 1}, False), ({"url": U, "urls": [U]}, False),
    ({}, False), ({"urls": []}, False), ({"urls": [U] * (MAX_BATCH + 1)}, False),
    ({"jobs": [{"url": U, "fetch": {"timeout": 400}}]}, False), ({"jobs": [{"url": U, "colour": 1}]}, False),
    ({"jobs": [{"priority": 1}]}, False),
]


@pytest.mark.parametrize(("body", "accepted"), SUBMISSIONS, ids=lambda v: str(v)[:60] if isinstance(v, dict) else "")
def test_the_submission_schema_accepts_exactly_what_the_server_does(body, accepted):
    """A generated client must neither refuse a body the server takes nor build one the server refuses."""
    valid = not list(_validator("Submission").iter_errors(body))
    reader = SubmissionReader(AddressPolicy(), SpecLimits())  # as the server reads them
    try:
        asyncio.run(reader.from_json(body, MAX_BATCH))
        taken = True
    except BadRequest:
        taken = False
    assert (valid, taken) == (accepted, accepted)


def test_tasks_and_batches_as_served_match_their_schemas():
    fetch = FetchOptions(method="POST", headers=(("Authorization", "Bearer s"), ("X-A", "1")), body="b", timeout=5.0,
                         max_bytes=100, follow_redirects=False, profile="site", profile_headers=("Cookie",))
    task = Task("t1", U, "example.com", "queued", 0, 1.5e9, 1.5e9, fetch=fetch, priority=-3, not_before=1.6e9,
                tags=("a",), batch_id="b1", reused_from="t0")
    shown = task.to_json()
    assert shown["fetch"]["headers"] == {"Authorization": "***", "X-A": "1", "Cookie": "***"}
    _validator("Task").validate(shown)
    _validator("Task").validate(Task("t2", U, "example.com", "completed", 1, 1.5e9, 1.5e9).to_json())
    counts = {"queued": 1, "running": 0, "completed": 2, "failed": 0, "cancelled": 0}
    _validator("Batch").validate(Batch("b1", 1.5e9, 3, counts, None, ("n",)).to_json())


def test_batches_and_idempotency_are_described():
    paths = openapi_document(False)["paths"]
    api = "/jobqueue/api/v1.0"
    operations = {op["operationId"]: op for item in paths.values() for op in item.values()
                  if isinstance(op, dict) and "operationId" in op}
    assert {"createBatch", "listBatches", "getBatch", "cancelBatch", "retryBatch"} <= set(operations)
    for name in ("submitTasks", "createBatch"):
        post = operations[name]
        key = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
        assert key["in"] == "header" and key["schema"]["maxLength"] == 255
        assert {"409", "422"} <= set(post["responses"])
        assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
        assert {p["name"] for p in post["parameters"] if p["in"] == "query"} == {
            "priority", "not_before", "max_age", "tag", "method", "user_agent", "timeout", "max_bytes",
            "follow_redirects", "profile", "webhook"}
    batch_body = operations["createBatch"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch_body == {"$ref": "#/components/schemas/BatchSubmission"}
    for name in ("getBatch", "cancelBatch", "retryBatch"):
        assert "404" in operations[name]["responses"]
    assert any(p["name"] == "batch" for p in paths[f"{api}/queue_tasks"]["get"]["parameters"])


def test_every_route_is_described():
    app = make_app(service=None, config=Settings())  # type: ignore[arg-type]
    spec_paths = [re.sub(r"\{id\}", "ID", p) for p in openapi_document(False)["paths"]]
    for rule in app.wildcard_router.rules:
        pattern = rule.matcher.regex.pattern
        if "static" in pattern or "favicon" in pattern or "robots" in pattern or pattern.startswith("/$"):
            continue
        regex = re.compile(pattern.replace("([A-Za-z0-9_-]{1,64})", "ID"))
        assert any(regex.fullmatch(p) for p in spec_paths), f"{pattern} is not in /openapi.json"


def _unshare_works() -> bool:
    probe = ["unshare", "-n", "-p", "-f", "--kill-child", "true"]
    return shutil.which("unshare") is not None and subprocess.run(probe, capture_output=True).returncode == 0


TOKEN = "fuzzing-token-0123456789abcdef"

# What JSON Schema cannot say, and so what schemathesis is told instead; everything else runs every check.
SCHEMATHESIS_CONFIG = """
# Every check (as `--checks all`, but set here so that an operation below may turn one off; a check named
# on the command line would win over it), except use_after_free: DELETE cancels a task and keeps it (GET
# shows it cancelled), as documented.
[checks]
enabled = true
use_after_free.enabled = false

# A URL is refused with 400 when it cannot be fetched: a private or local address, a host name that is
# not valid IDNA, a scheme other than http(s). Job fields have limits JSON Schema cannot state either: a
# not_before from 1970 to a year ahead, a fetch body only with POST, max_bytes up to --max-body-size, a known
# profile, header names unique ignoring case. So a schema-valid submission may get a 400 (its message
# names the field and the reason), and a repeated Idempotency-Key a 409 or 422, as documented. Job fields
# in the query string are read only beside a text/plain or form body; beside JSON they are a 400.
[[operations]]
include-operation-id = ["submitTasks", "createBatch", "mapSite", "startCrawl"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "409", "422", "429", "503"]

# The Firecrawl-compatible routes refuse, with Firecrawl's 400, a URL jobqueue will not fetch and an option it does
# not do; a failed fetch is a 422, a guard or robots refusal a 403, a scrape past its timeout a 408.
[[operations]]
include-operation-id = ["fcScrape", "fcScrapePrefixed", "fcMap", "fcMapPrefixed", "fcCrawl", "fcCrawlPrefixed",
                        "fcBatch", "fcBatchPrefixed"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "408", "422", "429", "503"]

# A host is named in the path as jobs store it or in Unicode (made ASCII by IDNA, as submissions are), which no
# pattern can state: a name IDNA refuses is a 400 invalid_host.
[[operations]]
include-operation-id = ["getHost", "setHostPolicy"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "503"]

# GET /history needs a URL unless a cursor continues a listing (400 missing_url), and the URL must be one
# a job could have (400 as for a submission): JSON Schema cannot tie the two parameters together.
[[operations]]
include-operation-id = "urlHistory"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "503"]

# GET /export's with= (readable views) is for JSON Lines only: beside format=csv or warc it is a 400
# invalid_format, a tie between two parameters JSON Schema cannot state.
[[operations]]
include-operation-id = "export"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "429", "503"]

# POST /batches takes the very body schema of POST /queue_tasks (only the URL limit differs), which is
# fuzzed in full; generating such bodies is most of the run's cost, so batches get a few cases per phase.
[[operations]]
include-operation-id = "createBatch"
phases.coverage.enabled = false
generation.max-examples = 8

# Half of the generated URLs are ones the server accepts, so submissions reach the store and the workers.
[dictionaries.urls]
values = ["https://example.com/", "example.org/a?b=1", "http://example.net:8080/x", "https://bücher.example/"]

[parameters]
"body.url" = { dictionary = "urls", probability = 0.5 }
"body.urls[*]" = { dictionary = "urls", probability = 0.5 }
"body.jobs[*].url" = { dictionary = "urls", probability = 0.5 }
"query.url" = { dictionary = "urls", probability = 0.5 }
# A cursor is valid only as the `next` of an earlier page, and only beside the same status filter; the
# schema cannot say that, so generated requests ask for the first page (tests/test_api_input.py pages).
"query.cursor" = ""
"""


def _fuzz_script(tmp_path: Any, name: str, server_args: str, header: str, examples: int = 25) -> str:
    """Shell lines that start a server on a free port, fuzz it and stop it by its pid, in a background subshell
    whose output goes to NAME.report and whose exit status is schemathesis's."""
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    out = f"{tmp_path}/{name}"
    return f"""
(
{sys.executable} {ROOT}/server.py --port 0 --processes 1 --database sqlite:///{out}.db --log-format json \
  {server_args} 2> {out}.log > {out}.out &
pid=$!
for i in $(seq 1 100); do grep -q 'dashboard on' {out}.out 2>/dev/null && break; sleep 0.1; done
port=$(grep -o 'http://127.0.0.1:[0-9]*/' {out}.out | head -1 | cut -d: -f3 | tr -d /)
echo "@@ {name}: server $pid on port $port"
# every check but use_after_free: see SCHEMATHESIS_CONFIG
{schemathesis} --config-file {tmp_path}/schemathesis.toml run http://127.0.0.1:$port/openapi.json \
  -H '{header}' \
  --exclude-path /jobqueue/api/v1.0/events --phases examples,coverage,fuzzing,stateful \
  --max-examples {examples} --workers 1 --seed 1
status=$?
kill $pid
wait $pid
exit $status
) > {out}.report 2>&1 &
pid_{name}=$!
"""


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.skipif(not _unshare_works(), reason="needs root for `unshare -n -p`: fuzzed URLs must not leave the host")
def test_schemathesis_finds_nothing_with_all_checks(tmp_path):
    """Bounded property-based runs, without and with a token, against live servers in a namespace with only loopback.

    The namespace has its own pids too: when its shell ends (or pytest kills it), nothing started in it survives.
    """
    (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)
    script = "ip link set lo up\n" + _fuzz_script(tmp_path, "open", "", "X-Fuzzing: open") + _fuzz_script(
        tmp_path, "token", f"--api-token {TOKEN}", f"Authorization: Bearer {TOKEN}") + (
        # the two runs share the two cores; their reports are shown one after the other
        "wait $pid_open; status_open=$?\nwait $pid_token; status_token=$?\n"
        f"cat {tmp_path}/open.report {tmp_path}/token.report\n"
        "exit $((status_open | status_token))\n")
    run = subprocess.run(["unshare", "-n", "-p", "-f", "--kill-child", "sh", "-c", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    summaries = run.stdout.split("@@ ")[1:]
    assert len(summaries) == 2, run.stdout[-3000:]
    for summary in summaries:
        assert " passed" in summary and "failed" not in summary.split("SUMMARY")[-1].lower(), summary[-3000:]
    left = subprocess.run(["pgrep", "-f", f"server.py --port 0 --database sqlite:///{tmp_path}/"],
                          capture_output=True, text=True)
    assert left.stdout == "", f"server processes left running: {left.stdout}"
