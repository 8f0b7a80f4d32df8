"""Pictures of every dashboard view, light, dark and at phone width, for docs/screenshots/.

Starts a real server on a fresh SQLite file in a temporary folder, a real local site (tests/target.py), a crawl
site and a webhook receiver, all on 127.0.0.1; keeps jobs flowing (pages, slow pages, 404s, 500s, refused
connections, a batch, a crawl, recurring fetches, webhooks) while chromium (/usr/bin/chromium) photographs each
view. Run from the repository with the venv's python:

    .venv/bin/python docs/screenshots/make.py            # every view, into docs/screenshots/
    .venv/bin/python docs/screenshots/make.py --only jobs,hosts --out /tmp/shots

PNGs are kept small: the viewport only (not the whole page), cut to 256 colours by pngsmall.py (no Pillow).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from tests.browser import CHROMIUM, CHROMIUM_ARGS, call, jobs_flowing, running_service  # noqa: E402
from tests.test_dashboard_crawls import crawl_site  # noqa: E402

sys.path.insert(0, HERE)
from pngsmall import shrink  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"screenshots only, 32 bytes long!").decode()
LOOKS = {"light": {"color_scheme": "light", "viewport": {"width": 1440, "height": 900}},
         "dark": {"color_scheme": "dark", "viewport": {"width": 1440, "height": 900}},
         "phone": {"color_scheme": "light", "viewport": {"width": 390, "height": 844}, "is_mobile": True,
                   "device_scale_factor": 1}}


class _Hook(BaseHTTPRequestHandler):
    """A webhook receiver: every third delivery is answered 500 (so some wait for their next try)."""

    seen = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Hook.seen += 1
        status = 500 if _Hook.seen % 3 == 0 else 200
        body = b'{"received": true}' if status == 200 else b"receiver busy, try later"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    """A webhook endpoint on 127.0.0.1 for the length of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def wait_for(predicate, seconds: float = 30) -> None:
    """Poll the server until `predicate()` holds (bounded)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("the server never reached the state the pictures need")
        time.sleep(0.1)


def seed(dashboard: str, target: str, crawl_base: str, hook: str) -> dict[str, str]:
    """Jobs of every kind; returns the ids the views need (a job, a batch, a crawl)."""
    ids: dict[str, str] = {}
    _, made = call(dashboard, "POST", "/queue_tasks", {
        "urls": [f"{target}/page/docs{i}" for i in range(12)] + [f"{target}/status/404", f"{target}/status/500",
                                                                  f"{target}/utf8", f"{target}/png"],
        "tags": ["docs"], "webhook": hook})
    ids["job"] = made["tasks"][0]["id"]
    call(dashboard, "POST", "/queue_tasks", {"urls": [f"http://127.0.0.1:9/refused{i}" for i in range(3)],
                                             "tags": ["broken"]})
    for path in ("page/front", "utf8", "page/prices"):
        call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/{path}", "every": 60, "webhook": hook})
    _, batch = call(dashboard, "POST", "/batches", {"urls": [f"{target}/page/b{i}" for i in range(20)]
                                                    + [f"{target}/status/503"], "tags": ["nightly"]})
    ids["batch"] = batch["batch"]["id"]
    _, crawl = call(dashboard, "POST", "/crawls", {"url": crawl_base + "/", "max_pages": 30, "max_depth": 3})
    ids["crawl"] = crawl["crawl"]["id"]
    call(dashboard, "PUT", "/hosts/localhost", {"max_concurrency": 2, "min_delay_ms": 250})
    wait_for(lambda: call(dashboard, "GET", f"/queue_tasks/{ids['job']}")[1]["task"]["status"] == "completed")
    return ids


def views(ids: dict[str, str]) -> list[tuple[str, str]]:
    """(name, address) of every view."""
    return [("jobs", "#/"), ("running", "#/jobs?status=running"), ("failed", "#/jobs?status=failed"),
            ("http-4xx", "#/jobs?http_status=4xx"), ("search", "#/jobs?tag=docs"),
            ("batches", "#/batches"), ("batch", f"#/batch/{ids['batch']}"), ("crawls", "#/crawls"),
            ("crawl", f"#/crawl/{ids['crawl']}"), ("hosts", "#/hosts"), ("deliveries", "#/deliveries"),
            ("schedules", "#/schedules"), ("job", f"#/job/{ids['job']}"), ("history", f"#/job/{ids['job']}/history"),
            ("stats", "#stats")]


def save(png: bytes, path: str) -> None:
    """Write a screenshot as an indexed PNG of at most 256 colours (pngsmall.py: a third of the size)."""
    with open(path, "wb") as out:
        out.write(shrink(png))


def main() -> None:
    """Start everything, photograph every view in every look, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=HERE, help="folder for the PNGs (default: docs/screenshots/)")
    parser.add_argument("--only", default="", help="comma-separated view names (default: all)")
    parser.add_argument("--looks", default="light,dark,phone", help="comma-separated: light, dark, phone")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    os.makedirs(args.out, exist_ok=True)
    only = {name for name in args.only.split(",") if name}
    with tempfile.TemporaryDirectory() as tmp, crawl_site() as site, receiver() as hook, \
            running_service(tmp, "--workers", "4", "--max-attempts", "1", "--min-every", "10",
                            "--webhook-retry-delays", "30", "--webhook-secret", SECRET) as (dashboard, target):
        ids = seed(dashboard, target, site.base, hook)
        every = lambda n: {"url": f"{target}/slow?delay={0.5 + n % 4}&n={n}" if n % 3 else  # noqa: E731
                           f"{target}/page/live{n}", "tags": ["live"]}
        with jobs_flowing(dashboard, every, every=0.4, rounds=2000), sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            time.sleep(6)  # a first statistics message and some finished minutes for the charts
            for look in args.looks.split(","):
                context = chromium.new_context(**LOOKS[look])
                page = context.new_page()
                page.set_default_timeout(20_000)
                for name, address in views(ids):
                    if only and name not in only:
                        continue
                    page.goto(dashboard + "#/")
                    page.wait_for_selector("#link[data-state=live]")
                    page.goto(dashboard + address)
                    page.wait_for_timeout(1500)  # the view's first reads and a stats message (a picture, not a test)
                    if name == "stats":
                        page.locator("#stats").scroll_into_view_if_needed()
                    path = os.path.join(args.out, f"{name}-{look}.png")
                    save(page.screenshot(), path)
                    print(path, os.path.getsize(path))
                context.close()
            chromium.close()


if __name__ == "__main__":
    main()
