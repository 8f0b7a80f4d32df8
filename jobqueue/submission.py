"""Reading a submission: the JSON body, plain-text lines or form fields of a request become validated jobs.

Everything is checked before anything is stored, and the first bad value is named by where it was
(`jobs[3].fetch.timeout`, `urls[2]`, `line 7 ('htp://x')`). Long submissions yield to the IOLoop every
few thousand items, so a 100,000-line batch never stalls other requests for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import BadRequest, Code, InvalidURL
from jobqueue.models import TaskIds
from jobqueue.profiles import host_allowed
from jobqueue.spec import SPEC_FIELDS, JobSpec, SpecLimits, merged, parse_spec
from jobqueue.spec_fields import query_form
from jobqueue.store.base import NewTask
from jobqueue.urls import normalize_url
from jobqueue.webhooks.spec import WebhookSpec

YIELD_EVERY = 2000
MAX_BATCH_URLS = 100_000
_BATCH_HINT = "; send more as a batch: POST /batches takes up to 100,000"
_SHOWN = 100  # characters of a bad value quoted back in an error
_JSON_SHAPE = 'send {"url": "..."}, {"urls": [...]} or {"jobs": [{"url": "...", ...}]}, with optional job fields'
# query parameters of a text/plain or form submission: name -> (path of the spec field it sets, its declaration)
_QUERY_FORM = query_form(JobSpec)
QUERY_FIELDS = {name: ".".join(path) for name, (path, _about) in _QUERY_FORM.items()}


@dataclass(frozen=True)
class Submission:
    """What one request asks to create: validated jobs, whether it named a single URL, and shared tags."""

    tasks: list[NewTask]
    single: bool
    tags: tuple[str, ...] = ()
    webhook: WebhookSpec | None = None  # the top level's, which a batch keeps for its batch.finished


class SubmissionReader:
    """Turns request bodies into validated NewTasks with ids; one per server, built in main()."""

    def __init__(self, policy: AddressPolicy, limits: SpecLimits, ids: TaskIds | None = None) -> None:
        self.policy = policy
        self.limits = limits
        self.ids = ids or TaskIds()

    async def from_json(self, body: Any, max_jobs: int, batch_id: str | None = None) -> Submission:
        """Read `{"url"}`, `{"urls"}` or `{"jobs"}` with top-level spec fields."""
        if not isinstance(body, dict):
            raise BadRequest(Code.INVALID_REQUEST, f"send a JSON object: {_JSON_SHAPE}")
        given = [k for k in ("url", "urls", "jobs") if k in body]
        if len(given) != 1:
            raise BadRequest(Code.INVALID_REQUEST, f"give exactly one of url, urls or jobs: {_JSON_SHAPE}")
        unknown = sorted(set(body) - SPEC_FIELDS - {"url", "urls", "jobs"})
        if unknown:
            raise BadRequest(Code.UNKNOWN_FIELD, f"{unknown[0]}: not a field of a submission; {_JSON_SHAPE}")
        top = {k: v for k, v in body.items() if k in SPEC_FIELDS}
        shared = parse_spec(top, self.limits)
        kind = given[0]
        if kind == "url":
            return Submission([self._task(body["url"], shared, "", batch_id)], True, shared.tags, shared.webhook)
        items = body[kind]
        if not isinstance(items, list):
            raise BadRequest(Code.INVALID_REQUEST, f'"{kind}" must be a JSON array')
        self._check_count(len(items), max_jobs)
        tasks: list[NewTask] = []
        for index, item in enumerate(items):
            if kind == "urls":
                tasks.append(self._task(item, shared, f"urls[{index}]", batch_id))
            else:
                where = f"jobs[{index}]"
                if not isinstance(item, dict) or "url" not in item:
                    raise BadRequest(Code.INVALID_REQUEST, f'{where}: must be an object with a "url"')
                spec = parse_spec(merged(top, item), self.limits, where) if len(item) > 1 else shared
                tasks.append(self._task(item["url"], spec, f"{where}.url", batch_id))
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return Submission(tasks, False, shared.tags, shared.webhook)

    async def from_lines(self, lines: Sequence[str], query: Mapping[str, list[str]], max_jobs: int,
                         batch_id: str | None = None, single: bool = False, kind: str = "line") -> Submission:
        """Read one URL per line (blank lines and '#' comments skipped) of a text or form body; errors name
        `kind number ('url')`; spec fields come from query parameters."""
        spec = parse_spec(spec_from_query(query), self.limits)
        tasks: list[NewTask] = []
        for number, line in enumerate(lines, 1):
            url = line.strip()
            if not url or url[0] == "#":
                continue
            if len(tasks) == max_jobs:
                raise BadRequest(Code.BATCH_TOO_LARGE, f"more than {max_jobs} URLs in one request ({kind} {number} is "
                                 f"the first over the limit){_BATCH_HINT if max_jobs < MAX_BATCH_URLS else ''}")
            try:
                clean = normalize_url(url, self.policy)
            except InvalidURL as exc:
                shown = url if len(url) <= _SHOWN else url[:_SHOWN] + "..."
                raise BadRequest(exc.code, f"{kind} {number} ({shown!r}): {exc.message}") from exc
            if spec.fetch.profile is not None:
                self._check_profile(spec, clean.host, f"{kind} {number}")
            tasks.append(NewTask(self.ids.new(), clean.url, clean.host, spec, batch_id))
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if not tasks:
            raise BadRequest(Code.INVALID_REQUEST, f"no URL given; send one URL per {kind} "
                             "(blank lines and lines starting with '#' are skipped)")
        return Submission(tasks, single and len(tasks) == 1, spec.tags, spec.webhook)

    def _check_count(self, count: int, max_jobs: int) -> None:
        if count == 0:
            raise BadRequest(Code.INVALID_REQUEST, "give at least one URL")
        if count > max_jobs:
            raise BadRequest(Code.BATCH_TOO_LARGE, f"{count} URLs in one request; the limit is {max_jobs}"
                             + (_BATCH_HINT if max_jobs < MAX_BATCH_URLS else ""))

    def _task(self, raw: Any, spec: JobSpec, where: str, batch_id: str | None) -> NewTask:
        try:
            clean = normalize_url(raw, self.policy)
        except InvalidURL as exc:
            raise BadRequest(exc.code, f"{where}: {exc.message}" if where else exc.message) from exc
        if spec.fetch.profile is not None:
            self._check_profile(spec, clean.host, where or "url")
        return NewTask(self.ids.new(), clean.url, clean.host, spec, batch_id)

    def _check_profile(self, spec: JobSpec, host: str, where: str) -> None:
        """Refuse a profile for a host its `hosts` list leaves out, so its secrets go only where they belong."""
        name = spec.fetch.profile
        hosts = self.limits.profile_hosts(name) if name is not None else None
        if hosts is not None and not host_allowed(hosts, host):
            shown = ", ".join(hosts[:10]) + (", ..." if len(hosts) > 10 else "")
            raise BadRequest(Code.PROFILE_NOT_ALLOWED, f"{where}: the fetch profile {name!r} may only be sent to "
                             f"{shown}, not to {host}; use a URL on one of those hosts or submit it without the "
                             "profile")


def text_lines(body: bytes) -> list[str]:
    """The lines of a text/plain body (UTF-8, or a 400 saying so)."""
    try:
        return body.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadRequest(Code.INVALID_REQUEST, f"the text body is not UTF-8 ({exc}); send UTF-8 text, "
                         "one URL per line") from exc


def spec_from_query(query: Mapping[str, list[str]]) -> dict[str, Any]:
    """Spec fields given as query parameters (`?tag=a&tag=b&priority=2&timeout=10`), typed like JSON."""
    raw: dict[str, Any] = {}
    for name, values in query.items():
        if name not in _QUERY_FORM:
            continue
        path, about = _QUERY_FORM[name]
        rule = about.rule
        assert rule is not None
        if not rule.repeated and len(values) > 1:
            raise BadRequest(Code.INVALID_FIELD, f"{name}: given {len(values)} times; give it once")
        target = raw
        for step in path[:-1]:
            target = target.setdefault(step, {})
        target[path[-1]] = rule.from_query(name, values)
    return raw
