"""Idempotency keys (Stripe's design): a request with a key is done once; repeats get the first answer.

The rules are the same on every backend, so they live here; a store only keeps the rows. A row is
`pending` (no answer yet) while its request runs, holding a lock that expires if the process dies,
and keeps the answer once the request created something. Keys expire after a day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from jobqueue.errors import BadRequest, IdempotencyConflict

KEY_TTL = 24 * 3600.0
LOCK_SECONDS = 300.0  # a request still "in flight" after this was abandoned by a dead process


@dataclass(frozen=True)
class IdempotencyKey:
    """Who asked (token or address), their key, and the fingerprint of what they sent."""

    client: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer to a keyed request, replayed to its repeats."""

    status: int
    body: str
    location: str | None = None


@dataclass(frozen=True)
class IdempotentAdd:
    """Asks a store to keep the answer in the same transaction that creates the jobs."""

    key: IdempotencyKey
    render: Callable[[list[Any]], StoredAnswer]


@dataclass(frozen=True)
class KeyRow:
    """A stored key as a backend read it."""

    fingerprint: str
    created_at: float
    locked_until: float | None
    answer: StoredAnswer | None


def check_key(raw: str | None) -> str | None:
    """Read an Idempotency-Key header: 1-255 printable ASCII characters, or absent."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= 255 or not all(" " <= c <= "~" for c in raw):
        raise BadRequest("invalid_idempotency_key",
                         "Idempotency-Key must be 1-255 printable ASCII characters (a UUID is a good choice)")
    return raw


def fingerprint(route: str, body: Any = None, raw: bytes | None = None) -> str:
    """What "the same request" means: the route, and the body as parsed JSON (or as bytes for text/plain)."""
    digest = hashlib.sha256(route.encode() + b"\0")
    if raw is not None:
        digest.update(b"raw\0" + raw)
    else:
        digest.update(b"json\0" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def decide(row: KeyRow | None, key: IdempotencyKey, now: float) -> StoredAnswer | Literal[True]:
    """What a request with this key should do, given the row found.

    Returns the stored answer to replay, True when the caller may take the key (no row, an expired
    one, or one whose request died), and raises IdempotencyConflict otherwise.
    """
    if row is None or row.created_at < now - KEY_TTL:
        return True
    if row.answer is None and (row.locked_until is None or row.locked_until < now):
        return True
    if row.fingerprint != key.fingerprint:
        raise IdempotencyConflict("idempotency_key_reused",
                                  "this Idempotency-Key was used with another request body in the last 24 hours; "
                                  "use a new key for a new request")
    if row.answer is None:
        raise IdempotencyConflict("idempotency_key_in_use",
                                  "a request with this Idempotency-Key is still being processed; "
                                  "repeat it when that one has answered")
    return row.answer
