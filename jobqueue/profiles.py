"""Fetch profiles: named sets of headers and cookies kept on the server, so credentials never travel in jobs.

The file (`--fetch-profiles=FILE`, JSON or TOML) maps a name to `{"headers": {...}, "cookies": {...}}`.
Jobs name a profile; the values are looked up when the job is fetched, so a changed file (re-read on
SIGHUP) applies to queued jobs too. Nothing here ever shows a value: the API lists header names only.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from jobqueue.errors import BadRequest
from jobqueue.spec import parse_headers

log = logging.getLogger("jobqueue.profiles")
_COOKIE_NAME = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class ProfileError(ValueError):
    """A profiles file that cannot be used; the message names the file and the problem."""


class FetchProfiles:
    """The named profiles of one server, re-readable while it runs."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._profiles: dict[str, tuple[tuple[str, str], ...]] = {}
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
        headers = self._profiles.get(name)
        return None if headers is None else tuple(k for k, _v in headers)

    def headers(self, name: str) -> tuple[tuple[str, str], ...] | None:
        """The headers (with values) a profile adds to a request, None if the profile is gone."""
        return self._profiles.get(name)

    def __len__(self) -> int:
        return len(self._profiles)


def read_profiles(path: str) -> dict[str, tuple[tuple[str, str], ...]]:
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


def _profile(path: str, name: str, body: Any) -> tuple[tuple[str, str], ...]:
    where = f"--fetch-profiles {os.path.basename(path)}: profile {name!r}"
    if not isinstance(body, Mapping) or set(body) - {"headers", "cookies"}:
        raise ProfileError(f'{where} must be an object with "headers" and/or "cookies"')
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
    return tuple(headers)
