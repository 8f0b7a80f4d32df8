"""How the MongoDB store talks to its server: client options from the URL, and the errors it reports.

No motor here (mongodb.py builds the client with these options), so a move to PyMongo's own async
client changes none of this. The URL wins wherever it says something: only what it leaves out is
filled in, so an operator's `w=`, `journal=`, `wtimeoutMS=`, `timeoutMS=` or
`serverSelectionTimeoutMS=` is kept as written.

With `timeoutMS` set (the default here) PyMongo runs every operation under its client-side operation
timeout (CSOT): it sends each command with `maxTimeMS` set to the time left, drops the write concern's
`wtimeout` from every command, and waits for a server as long as the time left allows, whatever
`serverSelectionTimeoutMS` says. So a URL's `wtimeoutMS` reaches the server only when the client has
no `timeoutMS`: such a URL gets the older per-socket bound (`socketTimeoutMS`) instead, and a URL that
sets both is refused, as one of the two would be ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import bson
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)
from pymongo.write_concern import WriteConcern

from jobqueue.store.base import StoreError

# An election takes up to ~12 s: waiting for a server must outlast it, or a stepdown becomes errors.
SERVER_SELECTION_MS = 20_000
# Every operation (a majority write waiting for a lagging secondary too) ends within this.
OPERATION_TIMEOUT_MS = 30_000
# Migrations run under this limit instead of timeoutMS: building an index over millions of jobs, or
# backfilling them, takes longer than any one operation should (and the server aborts a primary's
# index build when the command's maxTimeMS runs out).
MIGRATION_SECONDS = 24 * 3600.0
# What a 503 of a MongoDB failure asks clients to wait before trying again (an election takes up to ~12 s).
RETRY_AFTER_SECONDS = 5.0
DEFAULT_DATABASE = "jobqueue"
# Errors after which a write may or may not have been applied: a completion is checked, then retried.
AMBIGUOUS: tuple[type[Exception], ...] = (AutoReconnect, WriteConcernError)
UNAUTHORISED = (13, 18)  # Unauthorized, AuthenticationFailed
INDEX_CONFLICT = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict
CANNOT_STORE = (InvalidDocument, OverflowError)  # DocumentTooLarge is an InvalidDocument


def url_options(url: str) -> dict[str, str]:
    """The URL's query options, keys lower-cased as MongoDB treats them (case-insensitive)."""
    return {key.lower(): value for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def client_options(url: str) -> dict[str, Any]:
    """Keyword options for the client: the timeouts the URL does not set itself (module docstring).

    The default timeoutMS is never shorter than the wait for a server the URL allows: under CSOT that
    wait is cut at the operation's time limit, so a longer serverSelectionTimeoutMS would not outlast
    a slow election after opening otherwise.
    """
    given = url_options(url)
    if "timeoutms" in given and "wtimeoutms" in given:
        raise StoreError("the MongoDB URL sets both timeoutMS and wtimeoutMS: with timeoutMS the driver sends no "
                         "wtimeout (the write concern waits as long as timeoutMS allows instead), so one of them "
                         "would be ignored; remove one of the two")
    options: dict[str, Any] = {"tz_aware": False}
    if "serverselectiontimeoutms" not in given:
        options["serverSelectionTimeoutMS"] = SERVER_SELECTION_MS
    if "wtimeoutms" in given:  # no CSOT, so the wtimeout is sent: each network wait is bounded instead
        if "sockettimeoutms" not in given:
            options["socketTimeoutMS"] = OPERATION_TIMEOUT_MS
    elif "timeoutms" not in given:
        options["timeoutMS"] = max(OPERATION_TIMEOUT_MS, round(selection_seconds(url) * 1000))
    return options


def selection_seconds(url: str) -> float:
    """How long the store waits for a server when it opens, or after a capped operation found none: the URL's
    serverSelectionTimeoutMS, else SERVER_SELECTION_MS (under CSOT the driver waits as long as the operation's
    time limit allows instead, so the store applies this bound itself)."""
    given = url_options(url).get("serverselectiontimeoutms", "")
    return (int(given) if given.isdigit() else SERVER_SELECTION_MS) / 1000


def write_concern(url: str) -> WriteConcern:
    """Majority and journaled by default, with every part the URL sets (w, journal, wtimeoutMS) kept."""
    given = url_options(url)
    raw_w = given.get("w", "majority")
    w: int | str = int(raw_w) if raw_w.isdigit() else raw_w
    journal: bool | None
    if "journal" in given:
        journal = given["journal"].lower() == "true"
    else:
        journal = None if w == 0 else True  # an unacknowledged write cannot ask for the journal
    wtimeout = int(given["wtimeoutms"]) if given.get("wtimeoutms", "").isdigit() else None
    return WriteConcern(w=w, j=journal, wtimeout=wtimeout)


def database_name(url: str) -> str:
    """The database the URL names (as get_default_database reads it), else "jobqueue"."""
    return urlsplit(url).path.lstrip("/") or DEFAULT_DATABASE


def open_error(exc: Exception, where: str, name: str, step: str) -> StoreError:
    """What went wrong opening the store, said as it is: unreachable, refused rights, a conflicting index."""
    if isinstance(exc, ConfigurationError):
        return StoreError(f"the MongoDB URL for {where} is not valid: {exc}; see "
                          "https://www.mongodb.com/docs/manual/reference/connection-string/")
    failed = f"cannot prepare the MongoDB database {name!r} at {where} ({step} failed"
    if isinstance(exc, OperationFailure) and exc.code in UNAUTHORISED:
        return StoreError(f"{failed}: the server refused the credentials or rights of the URL's user: {exc}); give "
                          f"that user the readWrite role on {name!r}, or fix the user name, password or authSource "
                          "in the URL")
    if isinstance(exc, OperationFailure) and exc.code in INDEX_CONFLICT:
        return StoreError(f"{failed}: an index already there conflicts with one jobqueue needs: {exc}); drop that "
                          "index (jobqueue creates its own again) or point --database at another database")
    if isinstance(exc, ConnectionFailure) or step == "connecting":
        return StoreError(
            f"cannot reach MongoDB at {where} ({type(exc).__name__}: {exc}); check that mongod is running and the "
            "URL is right, e.g. `docker run -d -p 27017:27017 mongo:7 --replSet rs0` then "
            "`docker exec <id> mongosh --eval 'rs.initiate()'`")
    return StoreError(f"{failed}: {exc}); the user in the URL needs the readWrite role on it")


def storable(document: dict[str, Any], where: str) -> None:
    """Raise the StoreError of a document BSON cannot hold (an int past 64 bits, a key with a dot...) before any
    write: the driver would refuse it too, but only after the writes before it (the mock even half-applies it)."""
    try:
        bson.encode(document)
    except CANNOT_STORE as exc:
        raise operation_error(exc, where) from exc


def operation_error(exc: Exception, where: str) -> StoreError:
    """A failed operation as a StoreError naming the real cause: a 503 whose Retry-After says when to try again,
    or none when trying again will not help (a value BSON cannot hold, missing rights)."""
    if isinstance(exc, CANNOT_STORE):
        return StoreError(f"MongoDB cannot store this value ({type(exc).__name__}: {exc}); it is not a transient "
                          "failure, so repeating the request will not help")
    if isinstance(exc, OperationFailure) and exc.code in UNAUTHORISED:
        return StoreError(f"MongoDB at {where} refused the operation: the URL's user lacks the rights ({exc}); "
                          "give it the readWrite role")
    if isinstance(exc, DuplicateKeyError):
        return StoreError(f"MongoDB at {where} refused a duplicate key ({exc}); try again shortly",
                          retry_after=RETRY_AFTER_SECONDS)
    if isinstance(exc, PyMongoError) and getattr(exc, "timeout", False):
        return StoreError(f"MongoDB at {where} did not answer in time ({exc}); try again shortly",
                          retry_after=RETRY_AFTER_SECONDS)
    return StoreError(f"MongoDB at {where} failed: {exc}; try again shortly", retry_after=RETRY_AFTER_SECONDS)
