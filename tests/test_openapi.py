"""/openapi.json: a valid OpenAPI 3.1 document that covers every route, and the live server keeps to it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
from openapi_spec_validator import validate

from handlers import make_app
from handlers.openapi_spec import openapi_document
from jobqueue.config import Settings

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

# What JSON Schema cannot say, and so what schemathesis is told instead; everything else runs `--checks all`.
SCHEMATHESIS_CONFIG = """
# A URL is refused with 400 when it cannot be fetched: a private or local address, a host name that is
# not valid IDNA, a scheme other than http(s). The schema can only say "a string of 1 to 2048 characters",
# so a schema-valid submission may get a 400 (its message names the URL and the reason).
[[operations]]
include-operation-id = "submitTasks"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "409", "429", "503"]

# Half of the generated URLs are ones the server accepts, so submissions reach the store and the workers.
[dictionaries.urls]
values = ["https://example.com/", "example.org/a?b=1", "http://example.net:8080/x", "https://bücher.example/"]

[parameters]
"body.url" = { dictionary = "urls", probability = 0.5 }
"body.urls[*]" = { dictionary = "urls", probability = 0.5 }
# A cursor is valid only as the `next` of an earlier page, and only beside the same status filter; the
# schema cannot say that, so generated requests ask for the first page (tests/test_api_input.py pages).
"query.cursor" = ""
"""


def _fuzz_script(tmp_path: Any, name: str, server_args: str, header: str) -> str:
    """Shell lines: start a server on a free port, fuzz it, stop it by its pid; exit status in $status_NAME."""
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    out = f"{tmp_path}/{name}"
    return f"""
{sys.executable} {ROOT}/server.py --port 0 --database sqlite:///{out}.db --log-format json {server_args} \
  2> {out}.log > {out}.out &
pid=$!
for i in $(seq 1 100); do grep -q 'dashboard on' {out}.out 2>/dev/null && break; sleep 0.1; done
port=$(grep -o 'http://127.0.0.1:[0-9]*/' {out}.out | cut -d: -f3 | tr -d /)
echo "@@ {name}: server $pid on port $port"
# --checks all, except use_after_free: DELETE cancels a task and keeps it (GET shows it cancelled), as documented
{schemathesis} --config-file {tmp_path}/schemathesis.toml run http://127.0.0.1:$port/openapi.json \
  --checks all --exclude-checks use_after_free -H '{header}' \
  --exclude-path /jobqueue/api/v1.0/events --phases examples,coverage,fuzzing,stateful \
  --max-examples 25 --workers 1 --seed 1
status_{name}=$?
kill $pid
wait $pid
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
        tmp_path, "token", f"--api-token {TOKEN}", f"Authorization: Bearer {TOKEN}") + \
        'exit $((status_open | status_token))\n'
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
