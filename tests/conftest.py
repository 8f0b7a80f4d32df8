"""Shared fixtures: a real target site, a real server on a real SQLite file, an API client."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from jobqueue.config import Settings
from server import JobQueueServer
from tests.helpers import Api
from tests.store_backends import BACKENDS, FACTORIES, FakeClock
from tests.target import Target


@pytest.fixture
def target(io_loop: IOLoop) -> Iterator[Target]:
    """A target site on 127.0.0.1 serving the pages the tests fetch."""
    site = io_loop.run_sync(lambda: _async(Target))
    yield site
    site.stop()


async def _async(factory: Callable[[], Any]) -> Any:
    return factory()


def test_settings(tmp_path: Any, **overrides: Any) -> Settings:
    """Settings for a server under test: random port, a fresh SQLite file, fast retries."""
    base = Settings(
        port=0,
        database=f"sqlite:///{tmp_path}/jobqueue.db",
        allow_private_addresses=True,
        retry_base_delay=0.05,
        lease_seconds=10.0,
        shutdown_grace=1.0,
        fetch_timeout=10.0,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def make_server(io_loop: IOLoop, tmp_path: Any) -> Iterator[Callable[..., JobQueueServer]]:
    """Start servers with settings overrides; all are stopped after the test."""
    started: list[JobQueueServer] = []

    async def start(**overrides: Any) -> JobQueueServer:
        server = JobQueueServer(test_settings(tmp_path, **overrides))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        io_loop.run_sync(server.stop)


@pytest.fixture
def jq(io_loop: IOLoop, make_server: Callable[..., Any]) -> JobQueueServer:
    """A running server with default test settings."""
    return io_loop.run_sync(make_server)


@pytest.fixture
def api(jq: JobQueueServer) -> Iterator[Api]:
    """A client for the `jq` server."""
    client = Api(f"http://127.0.0.1:{jq.port}")
    yield client
    client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    """Mark tests whose body failed, so fixtures can keep evidence (browser screenshots)."""
    outcome = yield
    if call.when == "call" and outcome.get_result().failed:  # type: ignore[attr-defined]
        item.failed_call = True


# Whole files whose tests start server processes, kill them, or build packages: seconds each.
_SLOW_FILES = {"test_durability.py", "test_limits_across_processes.py", "test_live_processes.py", "test_netns.py",
               "test_packaging.py", "test_processes.py", "test_stats_processes.py", "test_two_processes.py",
               "test_webhook_durability.py", "test_host_pacing_processes.py", "test_crawls_durability.py"}
# Tests of the other files that `--durations` showed over ~3 s (by name; a renamed one just runs in the fast loop).
_SLOW_TESTS = {
    "test_a_due_job_is_found_behind_a_full_hosts_backlog_and_many_hosts_with_nothing_due",
    "test_a_filtered_listing_waits_for_a_server_that_went_away_instead_of_failing",
    "test_a_job_retried_while_another_server_still_fetches_it_keeps_the_host_within_its_limit",
    "test_a_slow_reader_that_keeps_reading_gets_the_whole_export",
    "test_a_slow_receiver_holds_only_its_own_connections_and_nothing_is_lost",
    "test_configuration_errors_are_one_sentence",
    "test_dashboards_get_stats_messages",
    "test_healthz_answers_within_its_deadline_when_the_database_does_not",
    "test_jobs_of_free_hosts_behind_a_full_hosts_backlog_are_found_in_priority_order",
    "test_listening_beyond_loopback_without_a_token_warns_loudly",
    "test_more_changes_than_a_page_made_at_one_instant_each_arrive_once_in_order",
    "test_writes_queued_behind_a_held_lock_fail_with_it_instead_of_waiting_again",
}
# Helpers that start a real service in a subprocess or drive chromium; a test naming one is slow.
_SLOW_HELPER_MODULES = {"tests.browser", "tests.test_processes", "tests.test_durability"}


def _names_used(code: Any) -> set[str]:
    """Global names a test's code (nested functions included) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names_used(const)
    return names


def _is_slow(item: Any) -> bool:
    if item.get_closest_marker("browser") or item.get_closest_marker("netns"):
        return True
    if item.path.name in _SLOW_FILES or item.path.name.startswith("test_dashboard_"):
        return True
    if getattr(item, "originalname", None) in _SLOW_TESTS:
        return True
    function = getattr(item, "function", None)
    if function is None:
        return False
    module = vars(item.module)
    return any(getattr(module.get(name), "__module__", None) in _SLOW_HELPER_MODULES
               for name in _names_used(function.__code__))


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Mark browser, network-namespace and multi-process tests `slow`, so `dev.py test --fast` can skip them."""
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock, moved by hand."""
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def open_store(request: Any, io_loop: IOLoop, tmp_path: Any, clock: FakeClock) -> Any:
    """A factory of opened stores sharing one database, on every backend; all are closed after the test."""
    make = FACTORIES[request.param](tmp_path, clock)
    opened = []

    async def open_one() -> Any:
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        io_loop.run_sync(store.close)


def _processes_marked(marker: str) -> list[tuple[int, str]]:
    """Live processes (other than this one) whose environment carries `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if marker.encode() not in handle.read():
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                found.append((int(entry), handle.read().replace(b"\0", b" ").decode(errors="replace")[:200]))
        except OSError:
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Every process a test starts inherits a marker; at the end none of them may still run."""
    marker = f"jobqueue-test-{uuid.uuid4().hex}"
    os.environ["JOBQUEUE_TEST_SESSION"] = marker
    yield
    deadline = time.monotonic() + 10
    left = _processes_marked(f"JOBQUEUE_TEST_SESSION={marker}")
    while left and time.monotonic() < deadline:  # a process told to stop may need a moment to exit
        time.sleep(0.1)
        left = _processes_marked(f"JOBQUEUE_TEST_SESSION={marker}")
    assert not left, f"tests left processes running: {left}"
