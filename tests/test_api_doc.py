"""docs/API.md stays true to the code: every endpoint it lists is routed, and every route is listed."""

from __future__ import annotations

import os
import re

from handlers import make_app
from jobqueue.config import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = "/jobqueue/api/v1.0"
_ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \|", re.MULTILINE)


def documented() -> set[tuple[str, str]]:
    """(method, full path with :id) of every endpoint row in docs/API.md's tables."""
    text = open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8").read()
    rows = set()
    for method, path in _ROW.findall(text):
        absolute = path in ("/", "/healthz", "/metrics", "/openapi.json") or path.startswith("/v2/")
        full = path if absolute else BASE + path
        rows.add((method, full))
    return rows


def routed() -> set[tuple[str, str]]:
    """(method, path with :id) of every route the application serves, from the handlers' own methods."""
    app = make_app(service=None, config=Settings())  # type: ignore[arg-type]
    out = set()
    for rule in app.wildcard_router.rules:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        if "static" in pattern or "favicon" in pattern or "robots" in pattern:  # static files tornado adds
            continue
        path = pattern.replace("([A-Za-z0-9_-]{1,64})", ":id").replace("/hosts/([^/]+)", "/hosts/:host")
        path = path.replace("/?", "")
        path = path.replace("/firecrawl/v2/", "/v2/")  # the same routes under a prefix, documented once
        handler = rule.target
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            implemented = getattr(handler, method.lower(), None)
            base = getattr(handler.__mro__[-2], method.lower(), None)  # tornado's RequestHandler default
            if implemented is not None and implemented is not base:
                out.add((method, path))
    return out


def test_every_documented_endpoint_is_routed_and_every_route_documented():
    docs, routes = documented(), routed()
    assert docs, "no endpoint rows found in docs/API.md"
    assert docs - routes == set(), f"documented but not served: {sorted(docs - routes)}"
    assert routes - docs == set(), f"served but not documented: {sorted(routes - docs)}"
