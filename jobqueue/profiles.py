"""Fetch profiles: named sets of headers and cookies kept on the server, so credentials never travel in jobs.

The file (`--fetch-profiles=FILE`, JSON or TOML) maps a name to `{"headers": {...}, "cookies": {...},
"hosts": [...]}`; `hosts` (exact names, or `*.example.com` for its subdomains) limits where a profile may be
sent, at submission and on every redirect hop. Names beyond ASCII are made ASCII as submitted URLs' hosts are
(jobqueue/hostnames.py), so `bücher.de` and `xn--bcher-kva.de` are one name; an invalid one stops the start
(or keeps the previous profiles on a reload) with the reason. Jobs name a profile; the values are looked up when the job
is fetched, so a changed file (re-read on SIGHUP) applies to queued jobs too. Nothing here ever
shows a value: the API lists header names only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobqueue.errors import BadRequest
from jobqueue.hostnames import to_ascii
from jobqueue.spec import parse_headers

log = logging.getLogger("jobqueue.profiles")
_COOKIE_NAME = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HOST_NAME = re.compile(r"(?:\*\.)?[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*")
MAX_HOSTS = 100


@dataclass(frozen=True)
class Profile:
    """One profile: the headers it adds and the hosts it may be sent to (None: any host)."""

    headers: tuple[tuple[str, str], ...]
    hosts: tuple[str, ...] | None = None

    def allows(self, host: str) -> bool:
        """Whether this profile's headers may go to `host` (a URL's lower-case host name)."""
        return self.hosts is None or host_allowed(self.hosts, host)


def host_allowed(patterns: Iterable[str], host: str) -> bool:
    """Whether `host` is one of `patterns`: an exact name, or a subdomain of a `*.name` pattern."""
    host = host.lower().rstrip(".").strip("[]")
    if ":" in host:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            pass
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


class ProfileError(ValueError):
    """A profiles file that cannot be used; the message names the file and the problem."""


class FetchProfiles:
    """The named profiles of one server, re-readable while it runs."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._profiles: dict[str, Profile] = {}
        if path is not None:
            self._profiles = read_profiles(path)

    def reload(self) -> bool:
        """Re-read the file (on SIGHUP); a broken file keeps the profiles in use and says why in the log."""
        if self.path is None:
            return False
        try:
            self._profiles = read_profiles(self.path)
        except ProfileError as exc:
            log.error("fetch profiles not reloaded, the previous ones stay in use: %s", exc)
            return False
        log.info("fetch profiles reloaded", extra={"profiles": len(self._profiles)})
        return True

    def header_names(self, name: str) -> tuple[str, ...] | None:
        """The header names a profile sets (for validation and redacted display), None if unknown."""
        profile = self._profiles.get(name)
        return None if profile is None else tuple(k for k, _v in profile.headers)

    def headers(self, name: str) -> tuple[tuple[str, str], ...] | None:
        """The headers (with values) a profile adds to a request, None if the profile is gone."""
        profile = self._profiles.get(name)
        return None if profile is None else profile.headers

    def hosts(self, name: str) -> tuple[str, ...] | None:
        """The hosts a profile may be sent to, for the submission check; None if it lists none (any host)."""
        profile = self._profiles.get(name)
        return None if profile is None else profile.hosts

    def get(self, name: str) -> Profile | None:
        """The whole profile as the fetcher uses it, None if it is gone."""
        return self._profiles.get(name)

    def __len__(self) -> int:
        return len(self._profiles)


def read_profiles(path: str) -> dict[str, Profile]:
    """Parse and check a profiles file: JSON, or TOML when the name ends in .toml."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ProfileError(f"--fetch-profiles {path!r} cannot be read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8")) if path.endswith(".toml") else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "TOML" if path.endswith(".toml") else "JSON"
        raise ProfileError(f"--fetch-profiles {path!r} is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"--fetch-profiles {path!r} must hold an object of named profiles")
    return {name: _profile(path, name, body) for name, body in data.items()}


def _profile(path: str, name: str, body: Any) -> Profile:
    where = f"--fetch-profiles {os.path.basename(path)}: profile {name!r}"
    if not isinstance(body, Mapping) or set(body) - {"headers", "cookies", "hosts"}:
        raise ProfileError(f'{where} must be an object with "headers" and/or "cookies", and optionally "hosts"')
    try:
        headers = list(parse_headers(dict(body.get("headers") or {}), "headers"))
    except BadRequest as exc:
        raise ProfileError(f"{where}: {exc.message}") from exc
    cookies = body.get("cookies") or {}
    if not isinstance(cookies, Mapping):
        raise ProfileError(f'{where}: "cookies" must be an object {{"name": "value"}}')
    pairs = []
    for cookie, value in cookies.items():
        if not cookie or set(cookie) - _COOKIE_NAME or not isinstance(value, str) or any(
                c in value for c in ';\r\n\x00'):
            raise ProfileError(f"{where}: cookie {cookie!r} has an invalid name or value")
        pairs.append(f"{cookie}={value}")
    if pairs:
        if any(k.lower() == "cookie" for k, _v in headers):
            raise ProfileError(f'{where}: give cookies either in "cookies" or as a Cookie header, not both')
        headers.append(("Cookie", "; ".join(pairs)))
    hosts = _hosts(where, body["hosts"]) if "hosts" in body else None
    return Profile(tuple(headers), hosts)


def _hosts(where: str, raw: Any) -> tuple[str, ...]:
    """Check a profile's `hosts`: a non-empty list of host names, IP addresses or `*.name` patterns."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_HOSTS:
        raise ProfileError(f'{where}: "hosts" must be a list of 1 to {MAX_HOSTS} host names '
                           '(leave it out to allow any host)')
    out = []
    for entry in raw:
        try:
            host = _host(entry)
        except ValueError as exc:
            raise ProfileError(f'{where}: "hosts" entry {entry!r} is not a valid internationalized domain name '
                               f"(IDNA): {exc}") from None
        if host is None:
            raise ProfileError(f'{where}: "hosts" entry {entry!r} is not a host name, an IP address or '
                               '"*.example.com" (no scheme, port or path)')
        out.append(host)
    return tuple(dict.fromkeys(out))


def _host(entry: Any) -> str | None:
    """One `hosts` entry the way URLs' hosts are compared (lower case, no trailing dot, a name beyond ASCII in the
    ASCII form submissions store: `faß.de` is `xn--fa-hia.de`), None if no host name; ValueError says why a name
    is not a valid internationalized one."""
    if not isinstance(entry, str) or not entry:
        return None
    text = entry.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    if not name.isascii() or "xn--" in name:
        name = to_ascii(name).rstrip(".")
    host = f"*.{name}" if wildcard else name
    return host if _HOST_NAME.fullmatch(host) and len(host) <= 253 else None
