"""Validation and normalisation of submitted URLs."""

from __future__ import annotations

import ipaddress
import re
import string
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import InvalidURL
from jobqueue.hostnames import MAX_LABEL, check_dns_length, to_ascii

__all__ = ["CleanURL", "InvalidURL", "normalize_url"]

MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# The shape of nearly every submitted URL, checked without urlsplit: scheme, ASCII host, port, path.
_SIMPLE = re.compile(r"(?:(https?)://)?([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?::(\d{1,5}))?([/?][^#]*)?", re.ASCII)
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_HOST_PORT = re.compile(r"^[^/?#:@]+:\d+(?:[/?#]|$)")
# What a percent-decoded host name may not contain: it would change the URL's structure or hide an address.
_NOT_IN_HOST = re.compile(r"[\x00-\x20\x7f/\\?#@:\[\]%]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# quote() leaves these alone: every printable ASCII character, so only what is beyond ASCII is encoded
_ASCII_SAFE = string.ascii_letters + string.digits + string.punctuation
# user info keeps all ASCII but what browsers escape in it (WHATWG's userinfo percent-encode set): an `@` there
# would end it early for the fetcher (`a@b@c.com` is user `a@b` at `c.com`, sent as `a%40b@c.com`)
_USERINFO_SAFE = "".join(ch for ch in _ASCII_SAFE if ch not in '"#<>?`{}/:;=@[\\]^|')
# an IPv6 zone (`fe80::1%25eth0`, RFC 6874) as curl takes it: `%25` then unreserved characters
_ZONE = re.compile(r"25[A-Za-z0-9._~-]+")
_AFTER_LITERAL = re.compile(r"(?::\d*)?")


class CleanURL(NamedTuple):
    """A URL ready to fetch and the host it names (for per-host limits); a tuple, as it is made per URL."""

    url: str
    host: str


def normalize_url(raw: object, policy: AddressPolicy) -> CleanURL:
    """Check a submitted URL; a missing scheme means https, other schemes are refused."""
    if not isinstance(raw, str):
        raise InvalidURL("invalid_url", "each URL must be a JSON string")
    text = raw.strip()
    if not text:
        raise InvalidURL("invalid_url", "the URL is empty")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidURL("url_too_long", f"the URL has {len(text)} characters; the limit is {MAX_URL_LENGTH}")
    if _UNSAFE.search(text):
        raise InvalidURL("invalid_url", "the URL contains spaces or control characters; percent-encode them")
    if not text.isascii() and _SURROGATE.search(text):
        raise InvalidURL("invalid_url", "the URL contains a lone UTF-16 surrogate (such as \\ud800), which is not "
                         "a character; send the URL as valid Unicode")
    simple = _SIMPLE.fullmatch(text)
    if simple is not None:
        return _simple_url(simple, policy)
    if text.startswith("//"):
        text = "https:" + text
    elif not _SCHEME.match(text) or _HOST_PORT.match(text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL("invalid_url", f"the URL cannot be parsed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidURL("unsupported_scheme", f"the scheme {scheme!r} is not supported; use http:// or https://")
    host = parts.hostname or ""
    if "%" in host and ":" not in host:  # curl decodes the host it connects to, so judge it decoded
        host = _decode_host(host)
    if not host.rstrip("."):
        raise InvalidURL("invalid_url", "the URL has no host name")
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("["):  # an IPvFuture literal (`[v1.x]`) holds no colon
        if not _AFTER_LITERAL.fullmatch(hostport.partition("]")[2]):  # urlsplit drops what follows the `]`
            raise InvalidURL("invalid_url", f"the host {hostport!r} has something other than a port after its `]`")
        ascii_host = _ip_literal(host.lower())
    else:
        try:
            ascii_host = to_ascii(host.lower())
        except ValueError as exc:
            raise InvalidURL("invalid_url", f"the host name {_shown(host)} is not a valid internationalized domain "
                             f"name (IDNA): {exc}") from None
    if policy.refuses_host(ascii_host):
        raise InvalidURL(
            "blocked",
            f"the host {host!r} is a private or local address; start the server with --allow-private-addresses "
            "to fetch from your own network",
        )
    if not hostport.startswith("["):
        _check_dns_length(ascii_host)
    netloc = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None:
        userinfo = _userinfo(parts.username) + (f":{_userinfo(parts.password)}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    url = urlunsplit((scheme, netloc, _percent_encode(parts.path or "/"), _percent_encode(parts.query), ""))
    return CleanURL(url=url, host=ascii_host.rstrip(".") if ":" not in ascii_host else ascii_host)


def _percent_encode(text: str) -> str:
    """What is beyond ASCII as UTF-8 percent-escapes, as browsers send it (`Müller` is `M%C3%BCller`);
    ASCII, existing escapes included, stays as given."""
    return text if text.isascii() else quote(text, safe=_ASCII_SAFE)


def _userinfo(text: str) -> str:
    """A user name or password as browsers send it: beyond ASCII and `@`, `:` and the like percent-escaped."""
    return quote(text, safe=_USERINFO_SAFE + "%")


def _ip_literal(host: str) -> str:
    """A bracketed host: an IPv6 address (with a zone, for link-local ones), refused otherwise: an `IPvFuture`
    literal (`[v1.x]`) or a malformed address could never be connected to."""
    if host.startswith("v"):
        raise InvalidURL("invalid_url", f"the host [{host}] is an IPvFuture address literal, which no fetcher can "
                         "connect to; write an IPv6 address or a host name")
    address, percent, zone = host.partition("%")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise InvalidURL("invalid_url", f"the host [{host}] is not an IPv6 address") from None
    if percent and not _ZONE.fullmatch(zone):
        raise InvalidURL("invalid_url", f"the host [{host}] has a zone that is not %25 followed by letters, digits "
                         "or -._~ (RFC 6874)")
    return host


def _check_dns_length(ascii_host: str) -> None:
    try:
        check_dns_length(ascii_host)
    except ValueError as exc:
        raise InvalidURL("invalid_url", f"the host name {_shown(ascii_host)} can never be looked up: {exc}") from None


def _shown(host: str) -> str:
    return repr(host if len(host) <= 80 else host[:60] + "...")


def _decode_host(host: str) -> str:
    """The host name curl will look up: percent-escapes decoded as UTF-8, refused if that makes it no host."""
    try:
        decoded = unquote_to_bytes(host).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidURL("invalid_url", f"the host name {host!r} percent-encodes bytes that are not UTF-8") from exc
    if _NOT_IN_HOST.search(decoded):
        raise InvalidURL(
            "invalid_url",
            f"the host name {host!r} decodes to {decoded!r}, which is not a host name; write the host unencoded",
        )
    return decoded.lower()


def _simple_url(match: re.Match[str], policy: AddressPolicy) -> CleanURL:
    scheme, host, port, rest = match.groups()
    scheme = (scheme or "https").lower()
    host = host.lower()
    if port is not None and int(port) > 65535:
        raise InvalidURL("invalid_url", f"the URL cannot be parsed: port {port} is out of range 0-65535")
    if "xn--" in host:
        try:
            to_ascii(host)
        except ValueError as exc:
            raise InvalidURL("invalid_url", f"the host name {_shown(host)} is not a valid internationalized domain "
                             f"name (IDNA): {exc}") from None
    if policy.refuses_host(host):
        raise InvalidURL(
            "blocked",
            f"the host {host!r} is a private or local address; start the server with --allow-private-addresses "
            "to fetch from your own network",
        )
    if len(host) > MAX_LABEL:  # shorter, it has no label too long and (by the pattern) no empty label
        _check_dns_length(host)
    path = _percent_encode(rest or "/")
    if path.startswith("?"):
        path = "/" + path
    netloc = f"{host}:{int(port)}" if port is not None else host
    return CleanURL(url=f"{scheme}://{netloc}{path}", host=host)
