"""Paging cursors of the API: the store's cursor plus the query it continues, so `?cursor=` alone is enough.

A cursor handed to users is a version letter, then the URL-safe base64 (unpadded) of compact JSON:
`{"k": listing, "s": store cursor, "l": limit, "f": {filter: value}}`. Any filter a listing gains
later (batch, tag, host...) rides in `f` without changing the format. Cursors are not signed: a
forged one can only ask for a page the same client could ask for by hand, and every field is
checked again here (and the store cursor by the store) as if it came in the query string.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tornado.web import RequestHandler

from jobqueue.errors import Code
from jobqueue.service import MAX_PAGE, BadRequest, parse_limit

from .base import ApiError

VERSION = "a"  # the next format gets "b"; a cursor of an unknown version is refused with a clear 400
_SHAPE = re.compile(rf"{VERSION}[A-Za-z0-9_-]{{4,2000}}")
_STORE_CURSOR = re.compile(r"[\x21-\x7e]{1,400}")  # printable ASCII: the stores' own cursors never hold more
_RESTART = "start again without a cursor"
PAGING = ("limit", "cursor")  # the query parameters of every listing, beside its filters


@dataclass(frozen=True)
class Listing:
    """One page request of a listing: its filters, page size and where the store should resume."""

    kind: str
    filters: dict[str, str]
    limit: int
    store_cursor: str | None

    def next(self, store_cursor: str | None) -> str | None:
        """The cursor to hand out for the page after this one (None on the last page)."""
        if store_cursor is None:
            return None
        state = {"k": self.kind, "s": store_cursor, "l": self.limit, "f": self.filters}
        packed = json.dumps(state, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode()
        return VERSION + base64.urlsafe_b64encode(packed).decode().rstrip("=")


Parser = Callable[[str | None], str | None]


def continue_listing(handler: RequestHandler, kind: str, parsers: Mapping[str, Parser]) -> Listing:
    """Read `?cursor=`, `?limit=` and the filters named in `parsers` into the page to serve.

    Without a cursor (or with an empty one) this is the first page of the query in the URL. With one,
    the cursor's own filters and limit apply. Repeating a filter with the cursor's value is fine; a
    different value is a 400 `invalid_cursor`, because silently serving the old filter (or mixing two)
    would hand back pages of a query the client did not ask for. `?limit=` beside a cursor changes the
    page size from there on: it does not change which items come next, only how many.
    """
    given = {name: parse(handler.get_query_argument(name, None)) for name, parse in parsers.items()}
    raw_limit = handler.get_query_argument("limit", None)
    limit = parse_limit(raw_limit)
    raw = handler.get_query_argument("cursor", None)
    if not raw:
        return Listing(kind, {k: v for k, v in given.items() if v is not None}, limit, None)
    state = _decode(raw, kind)
    filters = _filters(state.get("f"), parsers)
    for name, value in given.items():
        if value is not None and filters.get(name) != value:
            carried = f"{name}={filters[name]}" if name in filters else f"no {name} filter"
            raise ApiError.of(Code.INVALID_CURSOR, f"this cursor continues a listing with {carried}, and it carries "
                           f"its filters: leave {name} out to go on, or {_RESTART} for {name}={value}")
    return Listing(kind, filters, limit if raw_limit is not None else _limit(state.get("l")), state["s"])


def _decode(raw: str, kind: str) -> dict[str, Any]:
    if not _SHAPE.fullmatch(raw):
        raise _bad("it is not a cursor this server hands out")
    body = raw[1:]
    try:
        state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise _bad("it is damaged") from None
    if not isinstance(state, dict) or not isinstance(state.get("s"), str) or not _STORE_CURSOR.fullmatch(state["s"]):
        raise _bad("it is damaged")
    if state.get("k") != kind:
        raise _bad(f"it belongs to another listing, not to /{kind}")
    return state


def _filters(raw: object, parsers: Mapping[str, Parser]) -> dict[str, str]:
    if not isinstance(raw, dict) or not set(raw) <= set(parsers):
        raise _bad("it carries filters this listing does not have")
    filters: dict[str, str] = {}
    for name, value in raw.items():
        try:
            parsed = parsers[name](value) if isinstance(value, str) else None
        except BadRequest:
            parsed = None
        if parsed is None:
            raise _bad(f"its {name} filter is not valid")
        filters[name] = parsed
    return filters


def _limit(raw: object) -> int:
    if type(raw) is not int or not 1 <= raw <= MAX_PAGE:
        raise _bad("its page size is not valid")
    return raw


def _bad(why: str) -> ApiError:
    return ApiError.of(Code.INVALID_CURSOR, f"this cursor cannot be used: {why}; pass the `next` value of a previous "
                    f"page unchanged, or {_RESTART}")
