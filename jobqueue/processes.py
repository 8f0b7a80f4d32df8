"""`--processes=N`: N fetching processes on one database and one listening socket, watched by a parent.

The parent binds the listening sockets, has the database opened (and so migrated) once by a short-lived
helper process, then forks the children. The parent itself never opens the database, starts a thread or
builds an id generator, so every child starts from a clean copy: its own IOLoop, store connection, curl
multi, random state and background loops, over the inherited sockets, where the kernel hands each new
connection to one of them. The parent prints the start line once every child is ready, forwards SIGHUP,
turns SIGINT/SIGTERM into a clean stop of every child (each gives its leases back), and starts a child
again when one dies; if children die MAX_DEATHS times within DEATH_WINDOW seconds the whole service stops
with exit status 1. On Linux a child whose parent is killed (kill -9) is killed with it by the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tornado.netutil import bind_sockets

from jobqueue.config import ConfigError, Settings
from jobqueue.store import StoreError, store_from_url

log = logging.getLogger("jobqueue.processes")

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
MAX_DEATHS = 5
DEATH_WINDOW = 60.0
READY_TIMEOUT = 300.0  # seconds every child gets to open the database and start serving
STOP_MARGIN = 30.0  # beyond --shutdown-grace, for a child to close its streams and its database
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessRole:
    """Which of the service's processes this one is: `index` from 1 to `count`."""

    index: int
    count: int

    def share(self, total: int) -> int:
        """This process's part of a service-wide total (--workers), split evenly, at least 1. Limits that protect
        other machines (--per-host, --webhook-concurrency) are not split: the store counts them across processes."""
        return max(1, total // self.count + (1 if self.index <= total % self.count else 0))


# what a child runs: its role, the inherited sockets, and a callable to say it is serving; its exit status
ChildMain = Callable[[ProcessRole, list[socket.socket], Callable[[], None]], int]


@dataclass
class _Child:
    role: ProcessRole
    pid: int
    pipe: int | None  # the read end of its readiness pipe, until it has spoken or closed
    ready: bool = False
    error: str = ""


def describe(status: int) -> str:
    """A wait status in words: `exit status 2`, `killed by SIGKILL`."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class ProcessGroup:
    """The parent of `count` children serving one set of sockets; `run` returns the service's exit status."""

    def __init__(self, settings: Settings, count: int, child_main: ChildMain) -> None:
        self.settings = settings
        self.count = count
        self.child_main = child_main
        self.sockets: list[socket.socket] = []
        self.children: dict[int, _Child] = {}
        self.deaths: list[float] = []
        self._mask: set[signal.Signals | int] = set()  # the mask before ours, to restore
        self._pid = os.getpid()

    @property
    def port(self) -> int:
        """The port the children serve (known once bound, even for --port 0)."""
        return self.sockets[0].getsockname()[1]

    def run(self, announce: Callable[[int], None]) -> int:
        """Prepare the database, bind, fork, then supervise until SIGINT/SIGTERM; ConfigError when it cannot start."""
        prepare_database(self.settings)
        try:
            self.sockets = bind_sockets(self.settings.port, self.settings.host, family=socket.AF_UNSPEC)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.settings.host}:{self.settings.port}: "
                              f"{exc.strerror or exc}") from exc
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        stopped_cleanly = False
        try:
            for index in range(1, self.count + 1):
                self._spawn(ProcessRole(index, self.count))
            failure = self._until_ready()
            if failure is None:
                announce(self.port)
                failure = self._supervise()
        finally:  # a bug in this loop still stops the children cleanly rather than killing them with it
            stopped_cleanly = self._stop_all()
            while signal.sigtimedwait(SIGNALS, 0) is not None:
                pass  # a second Ctrl-C or SIGTERM during the stop must not kill the parent once unblocked
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            for sock in self.sockets:
                sock.close()
        if failure is not None:
            code, message = failure
            if message:
                print(f"jobqueue: {message}", file=sys.stderr, flush=True)
            return code
        return 0 if stopped_cleanly else 1

    def _spawn(self, role: ProcessRole) -> None:
        pid, read = _fork_with_pipe(lambda write: self._child(role, write))
        self.children[pid] = _Child(role, pid, read)

    def _child(self, role: ProcessRole, pipe: int) -> int:
        """In the forked child: undo the parent's signal set-up, serve, and say whether it started."""
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload forwarded while starting must not kill it
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
        for other in self.children.values():
            if other.pipe is not None:
                os.close(other.pipe)
        if not _die_with_parent(self._pid):
            return 0

        def ready() -> None:
            with contextlib.suppress(OSError):
                os.write(pipe, b"ready")
                os.close(pipe)

        try:
            return self.child_main(role, self.sockets, ready)
        except ConfigError as exc:
            with contextlib.suppress(OSError):
                os.write(pipe, b"error " + str(exc).encode("utf-8", "replace"))
            return 2
        except KeyboardInterrupt:
            return 130
        except BaseException:
            traceback.print_exc()
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

    def _until_ready(self) -> tuple[int, str] | None:
        """Wait for every child to report; (exit status, message) when the service cannot start."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(child.ready for child in self.children.values()):
            if self._step(0.02) == "stop":
                return 0, ""  # asked to stop while starting: nothing to report
            for child in self.children.values():
                if child.error:
                    return 2, child.error
            for child, _pid, status in self._reap():
                return 2, child.error or f"process {child.role.index} ended while starting ({describe(status)})"
            if time.monotonic() > deadline:
                return 1, f"the processes were not all serving after {READY_TIMEOUT:.0f} s"
        return None

    def _supervise(self) -> tuple[int, str] | None:
        """Restart children that die until told to stop; (1, why) when they keep dying."""
        while True:
            stop = self._step(1.0 if all(c.pipe is None for c in self.children.values()) else 0.05)
            if stop == "stop":
                return None
            for child, pid, status in self._reap():
                now = time.monotonic()
                self.deaths = [t for t in self.deaths if now - t < DEATH_WINDOW] + [now]
                what = f"process {child.role.index} (pid {pid}) died ({describe(status)})"
                if len(self.deaths) >= MAX_DEATHS:
                    return 1, (f"{what}: {MAX_DEATHS} processes died within {DEATH_WINDOW:.0f} s, so the service "
                               "stops; the log above says why")
                log.error("%s; starting it again", what, extra={"proc": child.role.index})
                self._spawn(child.role)

    def _step(self, timeout: float) -> str | None:
        """Wait up to `timeout` for a signal, act on it, read what children said; 'stop' when asked to stop."""
        try:
            info = signal.sigtimedwait(SIGNALS, timeout)
        except InterruptedError:
            info = None
        while info is not None:
            if info.si_signo in (signal.SIGTERM, signal.SIGINT):
                return "stop"
            if info.si_signo == signal.SIGHUP:
                self._signal_all(signal.SIGHUP)
            info = signal.sigtimedwait(SIGNALS, 0)
        self._read_pipes()
        return None

    def _read_pipes(self) -> None:
        pipes = {child.pipe: child for child in self.children.values() if child.pipe is not None}
        if not pipes:
            return
        readable, _, _ = select.select(list(pipes), [], [], 0)
        for fd in readable:
            child = pipes[fd]
            said = os.read(fd, 65536).decode("utf-8", "replace")
            os.close(fd)
            child.pipe = None
            child.ready = said == "ready"
            if said.startswith("error "):
                child.error = said[len("error "):]
                log.error("process %d cannot start: %s", child.role.index, child.error,
                          extra={"proc": child.role.index})

    def _reap(self) -> list[tuple[_Child, int, int]]:
        """The children that have ended since the last look, as (child, pid, wait status), each taken out of
        `children` here, so none is waited for (or signalled) again whatever the caller does next."""
        ended = []
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.children:
                child = self.children[pid]
                if child.pipe is not None:  # what it said before it ended
                    self._read_pipes()
                    if child.pipe is not None:
                        os.close(child.pipe)
                        child.pipe = None
                ended.append((self.children.pop(pid), pid, status))
        return ended

    def _signal_all(self, sig: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop_all(self) -> bool:
        """SIGTERM every child and wait for each (SIGKILL past the grace); whether all stopped cleanly."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + STOP_MARGIN
        clean = True
        while self.children:
            for child, pid, status in self._reap():
                if os.waitstatus_to_exitcode(status) not in (0, 130, -signal.SIGTERM, -signal.SIGINT):
                    clean = False
                    log.error("process %d (pid %d) stopped with %s", child.role.index, pid, describe(status),
                              extra={"proc": child.role.index})
            if self.children and time.monotonic() > deadline:
                log.error("processes %s did not stop within %.0f s; killing them",
                          ", ".join(str(c.role.index) for c in self.children.values()),
                          self.settings.shutdown_grace + STOP_MARGIN)
                self._signal_all(signal.SIGKILL)
                clean = False
                deadline = float("inf")
            if self.children:
                with contextlib.suppress(InterruptedError):
                    signal.sigtimedwait({signal.SIGCHLD}, 0.1)
        for child in self.children.values():
            if child.pipe is not None:
                os.close(child.pipe)
        return clean


def prepare_database(settings: Settings) -> None:
    """Open the database once before any child, in a helper process, so migrations run once (ConfigError)."""

    def open_and_close(write: int) -> int:
        try:
            asyncio.run(_open_and_close(settings))
        except ConfigError as exc:
            os.write(write, str(exc).encode("utf-8", "replace"))
            return 2
        except BaseException:
            traceback.print_exc()
            return 1
        finally:
            sys.stderr.flush()
        return 0

    pid, read = _fork_with_pipe(open_and_close)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        message = b"".join(chunks).decode("utf-8", "replace")
        raise ConfigError(message or f"opening the database failed ({describe(status)})")


def _fork_with_pipe(child: Callable[[int], int]) -> tuple[int, int]:
    """Fork a process that runs `child(write end of a pipe)` and exits with its status; the parent gets the
    child's pid and the pipe's read end."""
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 1
        try:
            code = child(write)
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


async def _open_and_close(settings: Settings) -> None:
    try:
        store = store_from_url(settings.database, sqlite_synchronous=settings.sqlite_synchronous)
        await store.open()
    except (ValueError, StoreError) as exc:
        raise ConfigError(f"cannot use the database {settings.database}: {exc}") from exc
    await store.close()


def _die_with_parent(parent: int) -> bool:
    """Ask Linux to kill this child when the parent dies; False if the parent is already gone.

    The parent only dies without stopping its children when it is killed (kill -9, the OOM killer), and
    then the children go the same way: a crash of the service, which at-least-once fetching recovers from.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    return os.getppid() == parent
