"""The filters of job listings (`GET /queue_tasks`, `GET /results`, exports, bulk actions): read and checked once.

Each parser takes the raw query value (None when absent) and returns its canonical text, which is what
paging cursors carry and what TaskFilter holds; the stores turn that text into their queries. Filters
speak the URL language of submissions: a host name or URL typed beyond ASCII finds the jobs whose URLs
were stored in their ASCII form (IDNA hosts, UTF-8 percent-escapes; jobqueue/urls.py).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from urllib.parse import quote

from jobqueue.errors import BadRequest
from jobqueue.hostnames import to_ascii
from jobqueue.models import STATUSES
from jobqueue.spec import iso_seconds

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_HOST = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,255}")
_CODE = re.compile(r"[a-z_]{1,64}")
_HTTP = re.compile(r"[1-5](?:[0-9]{2}|xx)")
MAX_TEXT = 200
MAX_WORDS = 10
# What submissions leave as typed in a URL's path, query and user info: all of printable ASCII (urls.py)
_ASCII_SAFE = string.ascii_letters + string.digits + string.punctuation
# A `?url=` substring as [scheme:]//authority and the rest, or as a leading authority-like part and the rest
_LEADING = re.compile(r"((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?([^/?#]*)(.*)", re.S)

Parser = Callable[[str | None], str | None]


def _given(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    if raw == "":
        raise BadRequest("invalid_filter", f"{name} is empty; leave it out to not filter by it")
    return raw


def _matching(pattern: re.Pattern[str], name: str, what: str) -> Parser:
    def parse(raw: str | None) -> str | None:
        value = _given(raw, name)
        if value is not None and not pattern.fullmatch(value):
            raise BadRequest("invalid_filter", f"{name} must be {what}")
        return value
    return parse


def parse_status(raw: str | None) -> str | None:
    """`?status=`: one of the five statuses."""
    if raw is None:
        return None
    if raw not in STATUSES:
        raise BadRequest("invalid_status", f"status must be one of {', '.join(STATUSES)} (leave it out for all)")
    return raw


def parse_id(raw: str | None) -> str | None:
    """An id given as a filter (`?batch=`): URL-safe, 1-64 characters."""
    if raw is None:
        return None
    if not _ID.fullmatch(raw):
        raise BadRequest("invalid_id", "an id is 1-64 characters of A-Z a-z 0-9 _ -")
    return raw


def parse_host(raw: str | None) -> str | None:
    """`?host=`: an exact host name as jobs store it (lower case, no port), so a name beyond ASCII is made
    ASCII as submissions make it (`bücher.de` finds the jobs of `xn--bcher-kva.de`)."""
    value = _given(raw, "host")
    if value is None:
        return None
    name = value.lower().rstrip(".")
    if not name.isascii():
        try:
            name = to_ascii(name).rstrip(".")
        except ValueError as exc:
            raise BadRequest("invalid_filter", f"host {value!r} is not a valid internationalized domain name "
                             f"(IDNA): {exc}") from None
    if not _HOST.fullmatch(name):
        raise BadRequest("invalid_filter", "host must be a host name like example.com")
    return name


def parse_http_status(raw: str | None) -> str | None:
    """`?http_status=`: a code (`404`) or a class (`4xx`)."""
    value = _given(raw, "http_status")
    if value is not None:
        value = value.lower()
        if not _HTTP.fullmatch(value):
            raise BadRequest("invalid_filter", "http_status must be a code from 100 to 599 (404) or a class (4xx)")
    return value


def parse_text(name: str) -> Parser:
    """A substring (`?url=`, kept as typed: url_forms says what it matches) or words (`?q=`): at most 200
    characters (a control character in it simply matches nothing: stored URLs have none)."""
    def parse(raw: str | None) -> str | None:
        value = _given(raw, name)
        if value is None:
            return None
        if len(value) > MAX_TEXT:
            raise BadRequest("invalid_filter", f"{name} must be at most {MAX_TEXT} characters")
        if name == "q" and not words(value):
            raise BadRequest("invalid_filter", "q needs at least one word of letters or digits")
        return value
    return parse


def url_forms(text: str) -> tuple[str, ...]:
    """What a parsed `?url=` substring looks for, lower case, any of them matching: the text as typed, and,
    beyond ASCII, the text as submissions store it (`Müller` is `M%C3%BCller` in a path, and a leading host
    name such as `bücher.de/` is `xn--bcher-kva.de/`), so the typed and the stored spelling find the same jobs."""
    forms = [text]
    if not text.isascii():
        forms.append(_percent(text))
        with_host = _with_ascii_host(text)
        if with_host is not None:
            forms.append(with_host)
    return tuple(dict.fromkeys(form.lower() for form in forms))


def _percent(text: str) -> str:
    """Beyond ASCII as UTF-8 percent-escapes, ASCII as given: how submissions store a path and a query."""
    return quote(text, safe=_ASCII_SAFE)


def _with_ascii_host(text: str) -> str | None:
    """The text with its leading host name (after `scheme://`, or at its start) in IDNA's ASCII form and the rest
    percent-encoded; None when that part is ASCII already or no host name (a host matches by whole labels:
    punycode of part of a label is not part of the label's punycode)."""
    leading = _LEADING.fullmatch(text)
    assert leading is not None  # every part of the pattern may be empty: it matches any text
    prefix, authority, rest = leading.groups()
    userinfo, at, hostport = authority.rpartition("@")
    host, colon, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if host.isascii() or (port and not port.isdigit()):
        return None
    try:
        ascii_host = to_ascii(host.lower())
    except ValueError:
        return None
    return f"{prefix or ''}{_percent(userinfo)}{at}{ascii_host}{colon}{port}{_percent(rest)}"


def parse_time(name: str) -> Parser:
    """`?since=` / `?until=`: an ISO 8601 time (no zone means UTC), kept as given."""
    def parse(raw: str | None) -> str | None:
        value = _given(raw, name)
        if value is not None:
            seconds(value, name)
        return value
    return parse


def seconds(text: str, name: str = "time") -> float:
    """Unix seconds of an ISO 8601 time (BadRequest names the field)."""
    try:
        return iso_seconds(text)
    except ValueError:
        raise BadRequest("invalid_filter", f"{name}: {text[:50]!r} is not an ISO 8601 time like "
                         "2026-11-28T03:00:00Z") from None


def http_range(value: str) -> tuple[int, int]:
    """The inclusive status range of a parsed http_status filter."""
    if value.endswith("xx"):
        low = int(value[0]) * 100
        return low, low + 99
    return int(value), int(value)


def words(text: str) -> list[str]:
    """The words of a `q` search: runs of letters and digits (`_` parts them, as the index's tokenizer does), lower
    case, at most ten."""
    return [w.lower() for w in re.findall(r"[^\W_]+", text)][:MAX_WORDS]


TASK_FILTERS: dict[str, Parser] = {
    "status": parse_status, "batch": parse_id, "crawl": parse_id,
    "tag": _matching(_TAG, "tag", "a tag of A-Z a-z 0-9 _ . : - (at most 64 characters)"),
    "host": parse_host, "http_status": parse_http_status,
    "error": _matching(_CODE, "error", "an error code like timeout or http_error"),
    "url": parse_text("url"), "q": parse_text("q"), "since": parse_time("since"), "until": parse_time("until"),
}
