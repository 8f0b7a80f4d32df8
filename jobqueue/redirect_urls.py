"""Where a redirect followed by the fetcher goes: the origin it is judged by, and the URL its Location names,
made sendable (curl takes ASCII only) the way curl and browsers make it."""

from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from jobqueue.errors import FetchError
from jobqueue.hostnames import to_ascii

__all__ = ["DEFAULT_PORTS", "REDIRECT_STATUSES", "next_url", "origin"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
_URL_KEEP = "".join(chr(c) for c in range(0x21, 0x7F))  # what a Location keeps as is (as curl does)


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (default ports filled in): what decides whether a redirect leaves the site."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").rstrip("."), port or DEFAULT_PORTS.get(scheme)


def next_url(current: str, location: str) -> str:
    """The absolute URL a Location header points at; only http(s), as for submitted URLs; sendable (ASCII)."""
    target = urljoin(current, _sendable(location.strip()))
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError("unsupported_scheme", f"a redirect points at the scheme {scheme!r}, which is not "
                         "fetched; only http and https are")
    try:
        host = urlsplit(target).hostname
    except ValueError:
        host = None
    if not host:
        raise FetchError("invalid_url", f"a redirect points at {target[:200]!r}, which has no host")
    return target.partition("#")[0]


def _sendable(location: str) -> str:
    """A Location as curl can send it: its raw bytes (header text is read as Latin-1) taken as UTF-8 when they
    are, the host by IDNA, and space, controls and other non-ASCII bytes percent-encoded, as browsers do."""
    if location.isascii() and " " not in location:
        return location
    charset = "utf-8"
    try:
        text = location.encode("latin-1").decode(charset)
    except UnicodeError:  # not UTF-8: its bytes are encoded one by one, as they came
        text, charset = location, "latin-1"
    try:
        parts = urlsplit(text)
        userinfo, at, hostport = parts.netloc.rpartition("@")
        host, colon, port = hostport.partition(":")  # a host with non-ASCII letters is no [IPv6] literal
        if not host.isascii():
            host = to_ascii(host.lower())  # as submitted URLs are made ASCII (UTS #46), not IDNA 2003
    except (ValueError, UnicodeError) as exc:
        raise FetchError("invalid_url", f"a redirect points at {location[:200]!r}, which cannot be read: "
                         f"{exc}") from None

    def encoded(part: str) -> str:
        return quote(part.encode(charset), safe=_URL_KEEP)

    netloc = f"{encoded(userinfo)}{at}{host}{colon}{encoded(port)}"
    return urlunsplit((parts.scheme, netloc, encoded(parts.path), encoded(parts.query), encoded(parts.fragment)))
