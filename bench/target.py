"""The benchmark's fetch target: Debian's nginx serving generated 20 KB pages, or a fallback server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

PAGE_BYTES = 20 * 1024
PAGES = 100

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/html;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location / {{ try_files $uri =404; }}
    }}
}}
"""

FALLBACK = """
import sys, tornado.web, tornado.ioloop
root = sys.argv[1]
pages = [open(f"{root}/www/p{i}.html", "rb").read() for i in range(PAGES)]
class Page(tornado.web.RequestHandler):
    def get(self, i):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(pages[int(i) % len(pages)])
app = tornado.web.Application([(r"/p(\\d+)\\.html", Page)])
app.listen(int(sys.argv[2]), "127.0.0.1")
print("ready", flush=True)
tornado.ioloop.IOLoop.current().start()
""".replace("PAGES", str(PAGES))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pages(root: str) -> None:
    """Write PAGES distinct 20 KB HTML pages."""
    os.makedirs(os.path.join(root, "www"), exist_ok=True)
    for i in range(PAGES):
        head = f"<!doctype html><meta charset=utf-8><title>page {i}</title><p>"
        filler = f"lorem ipsum dolor sit amet {i} " * PAGE_BYTES
        body = (head + filler)[: PAGE_BYTES - 5] + "</p>\n"
        with open(os.path.join(root, "www", f"p{i}.html"), "w") as handle:
            handle.write(body)


@dataclass
class BenchTarget:
    """A running target; `url(n)` names a distinct URL for job n."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    root: str

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/p{n % PAGES}.html?n={n}"

    def page_bytes(self, n: int) -> bytes:
        with open(os.path.join(self.root, "www", f"p{n % PAGES}.html"), "rb") as handle:
            return handle.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def start_target() -> BenchTarget:
    """nginx when installed (the fair comparison), else a Tornado server in its own process."""
    root = tempfile.mkdtemp(prefix="jobqueue-bench-")
    os.chmod(root, 0o755)  # nginx's workers drop to an unprivileged user that must read the pages
    os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
    make_pages(root)
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if os.environ.get("JOBQUEUE_BENCH_TARGET") == "tornado":
        nginx = None
    if nginx:
        conf = os.path.join(root, "nginx.conf")
        with open(conf, "w") as handle:
            handle.write(NGINX_CONF.format(root=root, port=port))
        proc = subprocess.Popen([nginx, "-p", root, "-c", conf], stderr=subprocess.DEVNULL)
        kind = "nginx"
    else:
        script = os.path.join(root, "fallback.py")
        with open(script, "w") as handle:
            handle.write(FALLBACK)
        proc = subprocess.Popen([sys.executable, script, root, str(port)], stdout=subprocess.PIPE)
        kind = "tornado (install nginx for the fair ceiling)"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return BenchTarget(kind, port, proc, root)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the benchmark target did not start")
