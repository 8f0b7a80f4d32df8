"""What reaches the logs: URLs without secrets, and start-up lines in the chosen format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from jobqueue.logs import announce, configure, safe_url


@pytest.mark.parametrize("url,logged", [
    ("https://bucket.example.com/key?X-Amz-Signature=abc123&X-Amz-Credential=AKIA", "https://bucket.example.com/key"),
    ("https://user:secret@example.com:8443/a/b?token=t#frag", "https://example.com:8443/a/b"),
    ("https://example.com/page#section-secret", "https://example.com/page"),
    ("https://example.com?q=1", "https://example.com"),
    ("http://user@[::1]:8080/x?y=z", "http://[::1]:8080/x"),
    ("http://a:b@c@host/p@q", "http://host/p@q"),
    ("http://user:pw@host/path://not-a-scheme", "http://host/path://not-a-scheme"),
    ("https://example.com/plain", "https://example.com/plain"),
])
def test_safe_url_drops_credentials_query_and_fragment(url, logged):
    assert safe_url(url) == logged


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_announce_keeps_the_plain_start_line_in_text_format(restore_logging, capsys):
    configure("text", logging.ERROR)
    out = io.StringIO()
    announce("dashboard on http://127.0.0.1:5000/ (database sqlite:///x.db, 4 workers)", stream=out)
    announce("listening on 0.0.0.0 WITHOUT an API token", logging.WARNING)
    assert out.getvalue() == "jobqueue: dashboard on http://127.0.0.1:5000/ (database sqlite:///x.db, 4 workers)\n"
    assert capsys.readouterr().err == "jobqueue: WARNING: listening on 0.0.0.0 WITHOUT an API token\n"


def test_announce_writes_json_lines_in_json_format(restore_logging):
    configure("json", logging.ERROR)  # start-up lines appear whatever the level
    out, err = io.StringIO(), io.StringIO()
    announce("dashboard on http://127.0.0.1:5000/", stream=out, url="http://127.0.0.1:5000/")
    announce("listening on 0.0.0.0 WITHOUT an API token", logging.WARNING, stream=err)
    line = json.loads(out.getvalue())
    assert line["msg"] == "dashboard on http://127.0.0.1:5000/" and line["url"] == "http://127.0.0.1:5000/"
    assert line["level"] == "info" and line["logger"] == "jobqueue" and out.getvalue().count("\n") == 1
    warning = json.loads(err.getvalue())
    assert warning["level"] == "warning" and "WITHOUT an API token" in warning["msg"]
