"""/openapi.json: a valid OpenAPI 3.1 document that covers every route, and the live server keeps to it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from openapi_spec_validator import validate

from handlers import make_app
from handlers.openapi_spec import openapi_document
from jobqueue.config import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_document_is_valid_openapi_3_1():
    for token_required in (False, True):
        validate(openapi_document(token_required))


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
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-n", "true"]).returncode == 0


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.skipif(not _unshare_works(), reason="needs root for `unshare -n`: the fuzzed URLs must not leave the host")
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(tmp_path):
    """Bounded property-based run against a live server in a network namespace with only loopback."""
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    script = f"""
ip link set lo up
{sys.executable} server.py --port 5081 --database sqlite:///{tmp_path}/st.db --log-format json \
  2> {tmp_path}/server.log > {tmp_path}/server.out &
for i in $(seq 1 100); do grep -q 'dashboard on' {tmp_path}/server.out 2>/dev/null && break; sleep 0.1; done
{schemathesis} run http://127.0.0.1:5081/openapi.json \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-path /jobqueue/api/v1.0/events --phases examples,coverage,fuzzing,stateful \
  --max-examples 25 --workers 1 --seed 1
status=$?
kill %1
exit $status
"""
    run = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout.split("SUMMARY")[-1].lower()
