"""The job spec: what one job asks for, validated once at the edge and carried unchanged to the fetcher.

A request body may set spec fields at its top level (they apply to every URL) and per job in
`{"jobs": [...]}`; a job's own value beats the top level's field by field, and inside `fetch` key
by key (a job's `fetch.headers` replaces the top level's whole, as do its `tags`).

Each field is declared once, in FetchOptions and JobSpec below (`declare`, see jobqueue.spec_fields): its rule,
default, query parameter, stored and shown forms and description. Parsing, the query-parameter form, storage,
the JSON shape, the reuse key and the OpenAPI schema are all read from there, so a new fetch option is one
declaration here plus the code that uses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobqueue.errors import BadRequest, Code
from jobqueue.render.options import CAPTURES, RenderingUnavailable, RenderOptions, parse_render
from jobqueue.spec_fields import (
    BAD_VALUE,
    BEYOND_LATIN1,
    ONE_LINE,
    Checked,
    Choice,
    Flag,
    HeaderText,
    Nested,
    Number,
    Reading,
    declare,
    declared,
    from_stored_form,
    read_fields,
    request_fields,
    shown_form,
    stored_form,
)
from jobqueue.webhooks.spec import MAX_WEBHOOK_URL, URLCheck, WebhookSpec, parse_webhook

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
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
TAG_PATTERN = f"^{_TAG.pattern}$"
# The reuse key of the options keyed before options were declared, in their order then, so the keys stored with
# jobs still match; an option declared `answer=True` since joins the key only when it is not at its default.
_FIRST_KEYED = ("method", "body", "headers", "profile", "user_agent", "follow_redirects", "max_bytes")


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# A header name is an HTTP token, and not one the fetcher sets itself (in any letter case).
_HEADER_NAME = (f"^(?!(?:{'|'.join(_any_case(name) for name in sorted(FORBIDDEN_HEADERS))})$)"
                f"[!#$%&'*+.^_`|~0-9A-Za-z-]{{1,128}}$")
HEADERS = {"type": "object", "maxProperties": MAX_HEADERS, "propertyNames": {"pattern": _HEADER_NAME},
           "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE, "pattern": ONE_LINE}}


def _headers(raw: Any, at: Reading) -> tuple[tuple[str, str], ...]:
    return parse_headers(raw, at.where)


def _body(raw: Any, at: Reading) -> str:
    method = at.before.get("method", "GET")
    if method != "POST":
        raise BadRequest(Code.INVALID_FIELD, f"{at.where}: only a POST sends a body (method is {method})")
    if not isinstance(raw, str) or len(raw.encode()) > MAX_POST_BODY:
        raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be a string of at most {MAX_POST_BODY} bytes")
    return raw


def _profile(raw: Any, at: Reading) -> str:
    if not isinstance(raw, str) or at.limits.profiles(raw) is None:
        raise BadRequest(Code.UNKNOWN_PROFILE, f"{at.where}: no fetch profile is named {raw!r}; profiles come from the "
                         "server's --fetch-profiles file")
    return raw


def _profile_headers(before: Mapping[str, Any], at: Reading) -> tuple[str, ...]:
    name = before.get("profile")
    return (at.limits.profiles(name) or ()) if name is not None else ()


def _shown_headers(headers: tuple[tuple[str, str], ...], options: FetchOptions) -> dict[str, str]:
    """Authorization, Cookie and the profile's headers as "***": their values never leave the server."""
    shown = {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers}
    for name in options.profile_headers:
        shown.setdefault(name, REDACTED)
    return shown


@dataclass(frozen=True)
class FetchOptions:
    """How one job is fetched; None means the server's setting. Each option is declared once, here."""

    method: str = declare("GET", Choice(METHODS), "default GET (read without regard to case)", nullable=False,
                          query="method", answer=True)
    headers: tuple[tuple[str, str], ...] = declare(
        (), Checked(_headers, HEADERS), "request headers, one line each; names are unique ignoring case, and "
        f"{', '.join(sorted(FORBIDDEN_HEADERS))} are set by the fetcher (400 invalid_header). A job's headers "
        "replace the top level's whole", store=lambda pairs: [list(pair) for pair in pairs],
        load=lambda pairs: tuple((str(k), str(v)) for k, v in pairs), show=_shown_headers,
        shown_schema={"type": "object", "additionalProperties": {"type": "string"}}, answer=True,
        key=lambda pairs: sorted((k.lower(), v) for k, v in pairs))
    body: str | None = declare(None, Checked(_body, {"type": "string", "maxLength": MAX_POST_BODY}),
                               f"request body, only with method POST (else 400); at most {MAX_POST_BODY} bytes as "
                               "UTF-8", answer=True)
    user_agent: str | None = declare(None, HeaderText(1024), "overrides the server's --user-agent", query="user_agent",
                                     answer=True)
    timeout: float | None = declare(None, Number(1, 300, "must be 1-300 seconds"), "seconds for the whole fetch; "
                                    "default: the server's --fetch-timeout", query="timeout")
    max_bytes: int | None = declare(
        None, Number(1, "max_body_size", "must be a whole number from 1 to the server's --max-body-size ({high})",
                     whole=True), "body cap in bytes, at most the server's --max-body-size (more is refused with 400)",
        query="max_bytes", answer=True)
    follow_redirects: bool = declare(True, Flag(), "false keeps a 3xx response as the result; default true",
                                     nullable=False, query="follow_redirects", answer=True)
    profile: str | None = declare(
        None, Checked(_profile, {"type": "string"}), "name of a server-side fetch profile (--fetch-profiles): headers "
        "and cookies that never travel in jobs; an unknown name is refused with 400 unknown_profile, a host the "
        "profile does not list with 400 profile_not_allowed", query="profile", answer=True)
    # names only, to show them redacted; values stay server-side
    profile_headers: tuple[str, ...] = declare((), derive=_profile_headers, store=list, load=tuple)

    @property
    def is_default(self) -> bool:
        """True for a plain GET with the server's settings (stored as nothing at all)."""
        return self == DEFAULT_FETCH

    def to_stored(self) -> dict[str, Any] | None:
        """The options as stored with the job (secrets included: the store is trusted), None when default."""
        return None if self.is_default else stored_form(self)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> FetchOptions:
        """Rebuild options from what `to_stored` wrote."""
        return from_stored_form(cls, stored) if stored else DEFAULT_FETCH

    def to_json(self) -> dict[str, Any]:
        """The options as the API shows them: Authorization, Cookie and profile headers as "***"."""
        return shown_form(self)

    def reuse_key(self, url: str) -> str:
        """What identifies "the same fetch" for freshness reuse: URL plus every option that changes the answer."""
        keyed = [(item, about) for item, about in declared(FetchOptions) if about.answer]
        if all(getattr(self, item.name) == item.default for item, _ in keyed):
            return hashlib.sha256(url.encode()).hexdigest()[:32]  # the common case, cheaply
        forms = {item.name: about.key(getattr(self, item.name)) if about.key else getattr(self, item.name)
                 for item, about in keyed}
        material = [url, *(forms[name] for name in _FIRST_KEYED)]
        material += [[item.name, forms[item.name]] for item, _ in keyed
                     if item.name not in _FIRST_KEYED and getattr(self, item.name) != item.default]
        return hashlib.sha256(json.dumps(material, separators=(",", ":")).encode()).hexdigest()[:32]


DEFAULT_FETCH = FetchOptions()


def _parse_tags(raw: Any, at: Reading) -> tuple[str, ...]:
    where = at.where
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise BadRequest(Code.INVALID_FIELD, f"{where}: must be a list of at most {MAX_TAGS} strings")
    for tag in raw:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            shown = tag[:64] if isinstance(tag, str) else tag
            raise BadRequest(Code.INVALID_FIELD, f"{where}: {shown!r} is not a tag (1-64 of A-Z a-z 0-9 _ . : -)")
    return tuple(dict.fromkeys(raw))


def iso_seconds(text: str) -> float:
    """Unix seconds of an ISO 8601 time, "Z" or no zone meaning UTC (ValueError when it is not one)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _parse_time(raw: Any, at: Reading) -> float:
    where = at.where
    if not isinstance(raw, str):
        raise BadRequest(Code.INVALID_FIELD, f"{where}: must be an ISO 8601 time such as 2026-11-28T03:00:00Z")
    try:
        seconds = iso_seconds(raw)
    except ValueError:
        raise BadRequest(Code.INVALID_FIELD, f"{where}: {raw[:64]!r} is not an ISO 8601 time "
                         "(e.g. 2026-11-28T03:00:00Z)") from None
    if seconds < 0:
        raise BadRequest(Code.INVALID_FIELD, f"{where}: before 1970; give a time from now on (a past time means now)")
    if seconds > at.now + MAX_AHEAD:
        raise BadRequest(Code.INVALID_FIELD, f"{where}: more than a year ahead")
    return seconds


def _outer(at: Reading) -> str:
    """Where the object holding a field sits (`jobs[3]`), for the checks that name their field themselves."""
    return at.where.rpartition(".")[0]


def _render(raw: Any, at: Reading) -> RenderOptions | None:
    options = parse_render(raw, None, _outer(at))
    if options is not None and not at.limits.rendering:
        raise RenderingUnavailable()
    return options


def _capture(raw: Any, at: Reading) -> tuple[str, ...]:
    # `render` is read before: a capture without it is refused by parse_render, naming `capture`
    render = at.before.get("render")
    options = parse_render(render.to_stored() if render is not None else None, raw, _outer(at))
    return options.capture if options is not None else ()


def stored_render(render: RenderOptions | None, capture: tuple[str, ...]) -> dict[str, Any] | None:
    """A job's `render` and `capture` as stored with it (None: not rendered)."""
    if render is None:
        return None
    return {**render.to_stored(), **({"capture": list(capture)} if capture else {})}


def load_render(stored: Mapping[str, Any] | None) -> RenderOptions | None:
    """The render options (capture included) again from what `stored_render` wrote."""
    if stored is None:
        return None
    return parse_render({k: v for k, v in stored.items() if k != "capture"}, stored.get("capture"))


FORMATS = ("markdown", "text", "links", "metadata")  # the readable views a job may ask for at its completion
CHANGED_ON = ("body", "text")  # what counts as a change of a recurring job's page (url.changed)


def _formats(raw: Any, at: Reading) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(name, str) and name in FORMATS for name in raw):
        raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be a list of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(raw))


def _changed_on(raw: Any, at: Reading) -> str:
    if raw not in CHANGED_ON:
        raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be one of {', '.join(CHANGED_ON)}")
    return str(raw)


ROBOTS = ("obey", "ignore")  # whether a job's fetch waits on its origin's robots.txt (jobqueue/robots.py)


def _robots(raw: Any, at: Reading) -> str:
    if raw not in ROBOTS:
        raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be one of {', '.join(ROBOTS)}")
    return str(raw)


def _webhook(raw: Any, at: Reading) -> WebhookSpec:
    return parse_webhook(raw, at.limits.webhook_url, at.where)


@dataclass(frozen=True)
class JobSpec:
    """Everything one job asks for besides its URL; each field is declared once, here."""

    # declare() is dataclasses.field with the declaration as metadata: ruff cannot tell, hence its two noqa
    fetch: FetchOptions = declare(DEFAULT_FETCH, Nested(FetchOptions, "fetch option"))  # noqa: RUF009
    priority: int = declare(0, Number(-10, 10, "must be a whole number from {low} to {high}", whole=True),
                            "higher runs first; same priority: older first. Default 0", nullable=False,
                            query="priority")
    not_before: float | None = declare(
        None, Checked(_parse_time, {"type": "string", "format": "date-time"}), "ISO 8601 time (UTC when it has no "
        "offset), at most a year ahead: the job stays queued until then. Default: now", query="not_before")
    max_age: float | None = declare(
        None, Number(0, MAX_AGE_LIMIT, "must be a number of seconds above 0 (at most {high})", above=True),
        "seconds: when a job for the same URL with the same fetch options completed within that age, nothing is "
        "fetched; the new job is created completed with `reused_from`", query="max_age")
    tags: tuple[str, ...] = declare(
        (), Checked(_parse_tags, {"type": "array", "maxItems": MAX_TAGS,
                                  "items": {"type": "string", "pattern": TAG_PATTERN}}, repeated=True),
        "labels to find jobs by; duplicates are dropped", nullable=False, query="tag")
    # Only with --webhook-secret (else 400 webhooks_disabled), so the OpenAPI request schemas leave it out
    # (docs/API.md describes it); its query parameter is the short form, a URL.
    webhook: WebhookSpec | None = declare(  # noqa: RUF009
        None, Checked(_webhook, {"type": "object"}, {"type": "string", "maxLength": MAX_WEBHOOK_URL}),
        "the URL of a webhook that gets every job's events (as the `webhook` field's short form; 400 "
        "webhooks_disabled without --webhook-secret)", query="webhook", offered=False)
    every: float | None = declare(
        None, Number("min_every", MAX_EVERY, "must be a number of seconds from {low:g} (this server's --min-every) "
                     "to {high}"), "seconds: a recurring fetch, run again this long after each due time (at least "
        "the server's --min-every); every run shares schedule_id")
    # Rendering in a browser (docs/API.md): checked by jobqueue.render.parse_render, which names the field at fault
    render: RenderOptions | None = declare(  # noqa: RUF009
        None, Checked(_render, {"anyOf": [{"type": "boolean"}, {"type": "object"}]}), "true, or an object of "
        "wait_until, wait_for, wait_ms, viewport and block: the page is loaded in a browser and the DOM after the "
        "waits is stored (400 rendering_unavailable on a server that runs no browser)")
    capture: tuple[str, ...] = declare(
        (), Checked(_capture, {"type": "array", "items": {"type": "string", "enum": list(CAPTURES)},
                               "uniqueItems": True}),
        "what to capture of a rendered page: screenshot, screenshot_full, pdf (needs render)", nullable=False)

    # Readable content (docs/API.md): views computed when the job completes, and what a recurring run's change is
    formats: tuple[str, ...] = declare(
        (), Checked(_formats, {"type": "array", "items": {"type": "string", "enum": list(FORMATS)},
                               "uniqueItems": True}),
        "readable views computed when the job completes, before it is recorded completed, and carried in its "
        "task.completed webhook and the JSON Lines export: markdown, text, links, metadata", nullable=False)
    changed_on: str = declare(
        "body", Checked(_changed_on, {"type": "string", "enum": list(CHANGED_ON)}), "a recurring job's runs "
        "differ (url.changed) when their bodies differ (body, the default) or only when their main text does (text)",
        nullable=False)

    # Politeness (docs/API.md): a single job obeys its origin's robots.txt only when it asks to
    robots: str | None = declare(
        None, Checked(_robots, {"type": "string", "enum": list(ROBOTS)}), "obey: the job's URL is checked against "
        "its origin's robots.txt before the fetch, and a disallowed one fails blocked_by_robots; ignore: it is not "
        "checked. Default: the server's --robots (ignore unless set)")

    @property
    def rendered(self) -> RenderOptions | None:
        """The render options with the captures asked, or None for a plain fetch."""
        return None if self.render is None else dataclasses.replace(self.render, capture=self.capture)


DEFAULT_SPEC = JobSpec()
SPEC_FIELDS = frozenset(request_fields(JobSpec))
FETCH_FIELDS = frozenset(request_fields(FetchOptions))


@dataclass(frozen=True)
class SpecLimits:
    """The server settings a spec is checked against."""

    max_body_size: int = 10 * 1024 * 1024
    profiles: Callable[[str], tuple[str, ...] | None] = field(default=lambda _name: None)  # header names or None
    # the hosts a profile may be sent to; None when it lists none (any host) or is unknown
    profile_hosts: Callable[[str], tuple[str, ...] | None] = field(default=lambda _name: None)
    webhook_url: URLCheck | None = None  # None: no --webhook-secret, so a webhook is refused
    min_every: float = 60.0  # --min-every: the shortest period of a recurring fetch
    rendering: bool = False  # a browser pool runs: `render` is accepted


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
        raise BadRequest(Code.UNKNOWN_FIELD, f"{prefix}{unknown[0]}: not a job field; the fields are "
                         f"url, {', '.join(sorted(SPEC_FIELDS))}")
    at = Reading(limits, where, time.time() if now is None else now)
    return JobSpec(**read_fields(JobSpec, raw, at))


def parse_headers(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """Check a headers object: names are tokens, none the fetcher owns, values one line each."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise BadRequest(Code.INVALID_HEADER, f'{where}: must be a JSON object {{"Name": "value"}}')
    if len(raw) > MAX_HEADERS:
        raise BadRequest(Code.INVALID_HEADER, f"{where}: {len(raw)} headers; the limit is {MAX_HEADERS}")
    seen: set[str] = set()
    out = []
    for name, value in raw.items():
        if not _TOKEN.fullmatch(name):
            raise BadRequest(Code.INVALID_HEADER, f"{where}: {name[:64]!r} is not a valid header name")
        lowered = name.lower()
        if lowered in FORBIDDEN_HEADERS:
            raise BadRequest(Code.INVALID_HEADER, f"{where}.{name}: this header is set by the fetcher and cannot be "
                             "given per job")
        if lowered in seen:
            raise BadRequest(Code.INVALID_HEADER, f"{where}.{name}: given twice (header names ignore case)")
        seen.add(lowered)
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE:
            raise BadRequest(Code.INVALID_HEADER, f"{where}.{name}: the value must be a string of at most "
                             f"{MAX_HEADER_VALUE} characters")
        if BAD_VALUE.search(value):
            raise BadRequest(Code.INVALID_HEADER, f"{where}.{name}: the value contains a line break or a control "
                             "character")
        beyond = BEYOND_LATIN1.search(value) if not value.isascii() else None
        if beyond is not None:
            shown = beyond.group()
            raise BadRequest(Code.INVALID_HEADER, f"{where}.{name}: {shown!r} (U+{ord(shown):04X}) cannot be sent in a "
                             "header, whose values are Latin-1 (ISO-8859-1) bytes; percent-encode it or use "
                             "another encoding the receiver reads (RFC 8187, base64)")
        out.append((name, value))
    return tuple(out)
