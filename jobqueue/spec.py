"""The job spec: what one job asks for, validated once at the edge and carried unchanged to the fetcher.

A request body may set spec fields at its top level (they apply to every URL) and per job in
`{"jobs": [...]}`; a job's own value beats the top level's field by field, and inside `fetch` key
by key (a job's `fetch.headers` replaces the top level's whole, as do its `tags`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobqueue.errors import BadRequest
from jobqueue.webhooks.spec import URLCheck, WebhookSpec, parse_webhook

METHODS = ("GET", "HEAD", "POST")
FORBIDDEN_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
    "proxy-connection", "proxy-authorization",
})
SECRET_HEADERS = frozenset({"authorization", "cookie"})
REDACTED = "***"
MAX_HEADERS = 50
MAX_HEADER_VALUE = 8 * 1024
MAX_POST_BODY = 1024 * 1024
MAX_TAGS = 10
MAX_AHEAD = 366 * 24 * 3600  # not_before at most a year ahead
MAX_AGE_LIMIT = 10 * 365 * 24 * 3600
MAX_EVERY = 366 * 24 * 3600  # a recurring fetch runs at least once a year
SPEC_FIELDS = frozenset({"fetch", "priority", "not_before", "max_age", "tags", "every", "webhook"})
FETCH_FIELDS = frozenset({"method", "headers", "body", "user_agent", "timeout", "max_bytes", "follow_redirects",
                          "profile"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# HTTP sends header values as bytes: ours are encoded as Latin-1, so nothing past U+00FF can be sent
_BEYOND_LATIN1 = re.compile(r"[^\x00-\xff]")


@dataclass(frozen=True)
class FetchOptions:
    """How one job is fetched; None means the server's setting."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    user_agent: str | None = None
    timeout: float | None = None
    max_bytes: int | None = None
    follow_redirects: bool = True
    profile: str | None = None
    profile_headers: tuple[str, ...] = ()  # names only, to show them redacted; values stay server-side

    @property
    def is_default(self) -> bool:
        """True for a plain GET with the server's settings (stored as nothing at all)."""
        return self == DEFAULT_FETCH

    def to_stored(self) -> dict[str, Any] | None:
        """The options as stored with the job (secrets included: the store is trusted), None when default."""
        if self.is_default:
            return None
        out: dict[str, Any] = {"method": self.method}
        if self.headers:
            out["headers"] = [list(pair) for pair in self.headers]
        for name in ("body", "user_agent", "timeout", "max_bytes", "profile"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if not self.follow_redirects:
            out["follow_redirects"] = False
        if self.profile_headers:
            out["profile_headers"] = list(self.profile_headers)
        return out

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> FetchOptions:
        """Rebuild options from what `to_stored` wrote."""
        if not stored:
            return DEFAULT_FETCH
        return cls(
            method=stored.get("method", "GET"),
            headers=tuple((str(k), str(v)) for k, v in stored.get("headers", ())),
            body=stored.get("body"),
            user_agent=stored.get("user_agent"),
            timeout=stored.get("timeout"),
            max_bytes=stored.get("max_bytes"),
            follow_redirects=stored.get("follow_redirects", True),
            profile=stored.get("profile"),
            profile_headers=tuple(stored.get("profile_headers", ())),
        )

    def to_json(self) -> dict[str, Any]:
        """The options as the API shows them: Authorization, Cookie and profile headers as "***"."""
        headers = {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in self.headers}
        for name in self.profile_headers:
            headers.setdefault(name, REDACTED)
        return {
            "method": self.method, "headers": headers, "body": self.body, "user_agent": self.user_agent,
            "timeout": self.timeout, "max_bytes": self.max_bytes, "follow_redirects": self.follow_redirects,
            "profile": self.profile,
        }

    def reuse_key(self, url: str) -> str:
        """What identifies "the same fetch" for freshness reuse: URL plus every option that changes the answer."""
        if (self.method == "GET" and not self.headers and self.body is None and self.profile is None
                and self.user_agent is None and self.follow_redirects and self.max_bytes is None):
            return hashlib.sha256(url.encode()).hexdigest()[:32]  # the common case, cheaply
        material = [url, self.method, self.body, sorted((k.lower(), v) for k, v in self.headers), self.profile,
                    self.user_agent, self.follow_redirects, self.max_bytes]
        return hashlib.sha256(json.dumps(material, separators=(",", ":")).encode()).hexdigest()[:32]


DEFAULT_FETCH = FetchOptions()


@dataclass(frozen=True)
class JobSpec:
    """Everything one job asks for besides its URL."""

    fetch: FetchOptions = DEFAULT_FETCH
    priority: int = 0
    not_before: float | None = None
    max_age: float | None = None
    tags: tuple[str, ...] = ()
    webhook: WebhookSpec | None = None
    every: float | None = None  # seconds: a recurring fetch


DEFAULT_SPEC = JobSpec()


@dataclass(frozen=True)
class SpecLimits:
    """The server settings a spec is checked against."""

    max_body_size: int = 10 * 1024 * 1024
    profiles: Callable[[str], tuple[str, ...] | None] = field(default=lambda _name: None)  # header names or None
    # the hosts a profile may be sent to; None when it lists none (any host) or is unknown
    profile_hosts: Callable[[str], tuple[str, ...] | None] = field(default=lambda _name: None)
    webhook_url: URLCheck | None = None  # None: no --webhook-secret, so a webhook is refused
    min_every: float = 60.0  # --min-every: the shortest period of a recurring fetch


def merged(top: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """A job's raw fields over the top level's: field by field, and `fetch` key by key (null means "not given",
    so it inherits)."""
    out = {k: v for k, v in top.items() if k in SPEC_FIELDS}
    for key, value in job.items():
        if value is None or key == "url":
            continue
        if key == "fetch" and isinstance(value, dict) and isinstance(out.get("fetch"), dict):
            out["fetch"] = {**out["fetch"], **{k: v for k, v in value.items() if v is not None}}
        else:
            out[key] = value
    return out


def parse_spec(raw: Mapping[str, Any], limits: SpecLimits, where: str = "", now: float | None = None) -> JobSpec:
    """Validate the spec fields of one job; BadRequest names the field (`jobs[3].fetch.timeout: ...`)."""
    if not raw:
        return DEFAULT_SPEC
    prefix = f"{where}." if where else ""
    unknown = sorted(set(raw) - SPEC_FIELDS)
    if unknown:
        raise BadRequest("unknown_field", f"{prefix}{unknown[0]}: not a job field; the fields are "
                         f"url, {', '.join(sorted(SPEC_FIELDS))}")
    fetch = _parse_fetch(raw.get("fetch"), limits, f"{prefix}fetch")
    priority = raw.get("priority", 0)
    if not _is_int(priority) or not -10 <= priority <= 10:
        raise BadRequest("invalid_field", f"{prefix}priority: must be a whole number from -10 to 10")
    now = time.time() if now is None else now
    not_before = _parse_time(raw.get("not_before"), f"{prefix}not_before", now)
    max_age = raw.get("max_age")
    if max_age is not None and (not _is_number(max_age) or not 0 < max_age <= MAX_AGE_LIMIT):
        raise BadRequest("invalid_field", f"{prefix}max_age: must be a number of seconds above 0 "
                         f"(at most {MAX_AGE_LIMIT})")
    tags = _parse_tags(raw.get("tags", []), f"{prefix}tags")
    hook = raw.get("webhook")
    webhook = parse_webhook(hook, limits.webhook_url, f"{prefix}webhook") if hook is not None else None
    every = raw.get("every")
    if every is not None and (not _is_number(every) or not limits.min_every <= every <= MAX_EVERY):
        raise BadRequest("invalid_field", f"{prefix}every: must be a number of seconds from {limits.min_every:g} "
                         f"(this server's --min-every) to {MAX_EVERY}")
    return JobSpec(fetch=fetch, priority=int(priority), not_before=not_before,
                   max_age=float(max_age) if max_age is not None else None, tags=tags, webhook=webhook,
                   every=float(every) if every is not None else None)


def _parse_fetch(raw: Any, limits: SpecLimits, where: str) -> FetchOptions:
    if raw is None:
        return DEFAULT_FETCH
    if not isinstance(raw, dict):
        raise BadRequest("invalid_field", f"{where}: must be a JSON object")
    unknown = sorted(set(raw) - FETCH_FIELDS)
    if unknown:
        raise BadRequest("unknown_field", f"{where}.{unknown[0]}: not a fetch option; the options are "
                         f"{', '.join(sorted(FETCH_FIELDS))}")
    method = raw.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise BadRequest("invalid_field", f"{where}.method: must be one of {', '.join(METHODS)}")
    method = method.upper()
    headers = parse_headers(raw.get("headers"), f"{where}.headers")
    body = raw.get("body")
    if body is not None:
        if method != "POST":
            raise BadRequest("invalid_field", f"{where}.body: only a POST sends a body (method is {method})")
        if not isinstance(body, str) or len(body.encode()) > MAX_POST_BODY:
            raise BadRequest("invalid_field", f"{where}.body: must be a string of at most {MAX_POST_BODY} bytes")
    user_agent = raw.get("user_agent")
    if user_agent is not None and (not isinstance(user_agent, str) or not 0 < len(user_agent) <= 1024
                                   or _BAD_VALUE.search(user_agent)):
        raise BadRequest("invalid_field", f"{where}.user_agent: must be 1-1024 characters, no control characters")
    beyond = _BEYOND_LATIN1.search(user_agent) if user_agent is not None and not user_agent.isascii() else None
    if beyond is not None:
        shown = beyond.group()
        raise BadRequest("invalid_field", f"{where}.user_agent: {shown!r} (U+{ord(shown):04X}) cannot be sent in a "
                         "header, whose values are Latin-1 (ISO-8859-1) bytes")
    timeout = raw.get("timeout")
    if timeout is not None and (not _is_number(timeout) or not 1 <= timeout <= 300):
        raise BadRequest("invalid_field", f"{where}.timeout: must be 1-300 seconds")
    max_bytes = raw.get("max_bytes")
    if max_bytes is not None and (not _is_int(max_bytes) or not 1 <= max_bytes <= limits.max_body_size):
        raise BadRequest("invalid_field", f"{where}.max_bytes: must be a whole number from 1 to the server's "
                         f"--max-body-size ({limits.max_body_size})")
    follow = raw.get("follow_redirects", True)
    if not isinstance(follow, bool):
        raise BadRequest("invalid_field", f"{where}.follow_redirects: must be true or false")
    profile = raw.get("profile")
    profile_headers: tuple[str, ...] = ()
    if profile is not None:
        names = limits.profiles(profile) if isinstance(profile, str) else None
        if names is None:
            raise BadRequest("unknown_profile", f"{where}.profile: no fetch profile is named {profile!r}; "
                             "profiles come from the server's --fetch-profiles file")
        profile_headers = names
    return FetchOptions(method=method, headers=headers, body=body, user_agent=user_agent,
                        timeout=float(timeout) if timeout is not None else None,
                        max_bytes=int(max_bytes) if max_bytes is not None else None,
                        follow_redirects=follow, profile=profile, profile_headers=profile_headers)


def parse_headers(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """Check a headers object: names are tokens, none the fetcher owns, values one line each."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise BadRequest("invalid_header", f'{where}: must be a JSON object {{"Name": "value"}}')
    if len(raw) > MAX_HEADERS:
        raise BadRequest("invalid_header", f"{where}: {len(raw)} headers; the limit is {MAX_HEADERS}")
    seen: set[str] = set()
    out = []
    for name, value in raw.items():
        if not _TOKEN.fullmatch(name):
            raise BadRequest("invalid_header", f"{where}: {name[:64]!r} is not a valid header name")
        lowered = name.lower()
        if lowered in FORBIDDEN_HEADERS:
            raise BadRequest("invalid_header", f"{where}.{name}: this header is set by the fetcher and cannot be "
                             "given per job")
        if lowered in seen:
            raise BadRequest("invalid_header", f"{where}.{name}: given twice (header names ignore case)")
        seen.add(lowered)
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE:
            raise BadRequest("invalid_header", f"{where}.{name}: the value must be a string of at most "
                             f"{MAX_HEADER_VALUE} characters")
        if _BAD_VALUE.search(value):
            raise BadRequest("invalid_header", f"{where}.{name}: the value contains a line break or a control "
                             "character")
        beyond = _BEYOND_LATIN1.search(value) if not value.isascii() else None
        if beyond is not None:
            shown = beyond.group()
            raise BadRequest("invalid_header", f"{where}.{name}: {shown!r} (U+{ord(shown):04X}) cannot be sent in a "
                             "header, whose values are Latin-1 (ISO-8859-1) bytes; percent-encode it or use "
                             "another encoding the receiver reads (RFC 8187, base64)")
        out.append((name, value))
    return tuple(out)


def _parse_tags(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise BadRequest("invalid_field", f"{where}: must be a list of at most {MAX_TAGS} strings")
    for tag in raw:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            shown = tag[:64] if isinstance(tag, str) else tag
            raise BadRequest("invalid_field", f"{where}: {shown!r} is not a tag (1-64 of A-Z a-z 0-9 _ . : -)")
    return tuple(dict.fromkeys(raw))


def iso_seconds(text: str) -> float:
    """Unix seconds of an ISO 8601 time, "Z" or no zone meaning UTC (ValueError when it is not one)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _parse_time(raw: Any, where: str, now: float) -> float | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest("invalid_field", f"{where}: must be an ISO 8601 time such as 2026-11-28T03:00:00Z")
    try:
        at = iso_seconds(raw)
    except ValueError:
        raise BadRequest("invalid_field", f"{where}: {raw[:64]!r} is not an ISO 8601 time "
                         "(e.g. 2026-11-28T03:00:00Z)") from None
    if at < 0:
        raise BadRequest("invalid_field", f"{where}: before 1970; give a time from now on (a past time means now)")
    if at > now + MAX_AHEAD:
        raise BadRequest("invalid_field", f"{where}: more than a year ahead")
    return at


def _is_int(value: Any) -> bool:
    """A whole number, as JSON Schema counts them (6.0 is one)."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN
