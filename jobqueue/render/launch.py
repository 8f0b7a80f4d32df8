"""How a browser is started so that it obeys the guard and dies with the service.

Every process of the chain gets PR_SET_PDEATHSIG=SIGKILL from a tiny wrapper that then execs the real
program: Playwright's Node driver (its parent is the service) and Chromium (its parent is the driver).
So SIGKILL of the service kills the driver, which kills Chromium, whose helpers (zygote, renderers,
GPU and network processes) exit when their browser's pipes close. Playwright also starts Chromium as
the leader of its own process group, which lets `kill_group` end every process of one browser at once.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

MARKER_ENV = "JOBQUEUE_RENDER_POOL"  # carried by every process of a pool's browsers, to find them in /proc
PIDFILE_ENV = "JOBQUEUE_RENDER_PIDFILE"
WORKDIR_PREFIX = "jobqueue-render-"  # + the owner's pid: a pool's files, its browsers' profiles among them

_PYTHON_PDEATHSIG = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9); "
                     "os.getppid() == 1 and sys.exit(1); os.execv(sys.argv[1], sys.argv[1:])")


def find_chromium(configured: str | None = None) -> str | None:
    """The Chromium to drive: the configured path, else `chromium` on the PATH; never downloaded."""
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def guard_args(proxy_server: str) -> list[str]:
    """Chromium flags that leave the proxy as the browser's only way out."""
    host = proxy_server.rsplit(":", 1)[0].split("//", 1)[-1]
    return [
        f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {host}",  # its own DNS can reach nothing
        "--disable-quic",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--dns-prefetch-disable",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-domain-reliability",
        "--no-pings",
        "--disable-gpu",
    ]


def _pdeathsig_prefix() -> str:
    setpriv = shutil.which("setpriv")
    if setpriv:
        return f"exec {shlex.quote(setpriv)} --pdeathsig KILL --"
    return f"exec {shlex.quote(sys.executable)} -c {shlex.quote(_PYTHON_PDEATHSIG)}"


def write_wrapper(directory: str, name: str, program: str, pidfile_env: str | None = None) -> str:
    """An executable script that records its pid (optional), sets PDEATHSIG=SIGKILL and execs `program`."""
    path = os.path.join(directory, name)
    lines = ["#!/bin/sh"]
    if pidfile_env:
        lines.append(f'[ -n "${pidfile_env}" ] && echo $$ > "${pidfile_env}"')
    lines.append(f'{_pdeathsig_prefix()} {shlex.quote(program)} "$@"')
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(path, stat.S_IRWXU)
    return path


def bundled_node() -> str | None:
    """The Node that Playwright would start for its driver."""
    configured = os.environ.get("PLAYWRIGHT_NODEJS_PATH")
    if configured:
        return configured
    try:
        from playwright._impl._driver import compute_driver_executable
    except ImportError:
        return None
    node, _cli = compute_driver_executable()
    return str(node)


@contextmanager
def driver_wrapped(directory: str, marker: str) -> Iterator[None]:
    """While Playwright starts its driver, make it start it through a PDEATHSIG wrapper, marked as the pool's.

    Playwright reads both from the environment when it spawns the driver, so they are set for that moment."""
    node = bundled_node()
    changes = {MARKER_ENV: marker, "TMPDIR": directory}  # the browsers' profiles go under the pool's directory
    if node is not None and os.path.exists(node):
        changes["PLAYWRIGHT_NODEJS_PATH"] = write_wrapper(directory, "node", node)
    before = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def sweep_stale(parent: str) -> None:
    """Remove the directories of pools whose process is gone (killed before it could clean up)."""
    for name in os.listdir(parent):
        if name.startswith(WORKDIR_PREFIX):
            pid = name[len(WORKDIR_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def carries_marker(pid: int, marker: str) -> bool:
    """Whether process `pid` is one of the pool's (its environment holds the pool's marker)."""
    if not marker:
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return f"{MARKER_ENV}={marker}".encode() in handle.read().split(b"\0")
    except OSError:
        return False


def pool_processes(marker: str, groups: Iterable[int] = ()) -> list[int]:
    """Every live process of a pool: those carrying its marker (driver, browsers, some helpers) and those in
    the process group of one of its browsers (zygote-forked helpers rewrite their environment block)."""
    groups = set(groups)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            continue  # a zombie has exited; its parent has yet to reap it
        if int(fields[2]) in groups or carries_marker(int(entry), marker):
            found.append(int(entry))
    return found


def kill_group(pgid: int, marker: str) -> None:
    """SIGKILL a browser's process group, if it is still ours: its leader carries our marker, or its leader
    is gone and members are left (a pgid is not handed out again while its group has members)."""
    if pgid <= 0:
        return
    if carries_marker(pgid, marker) or (not os.path.exists(f"/proc/{pgid}") and pool_processes("", [pgid])):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
