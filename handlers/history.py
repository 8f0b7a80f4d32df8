"""`/history`, `/results/:id/diff`, `/stats/storage`: a URL's results over time and what they take on disk."""

from __future__ import annotations

from jobqueue.errors import Code
from jobqueue.filters import parse_id
from jobqueue.history.service import HistoryService

from .base import ApiError, BaseAPIHandler
from .paging import PAGING, continue_listing


def _url(raw: str | None) -> str | None:
    """Keep `?url=` as given (it is normalised when used); an empty one counts as missing."""
    return raw if raw else None


class HistoryHandler(BaseAPIHandler):
    """GET the results fetched for one URL, newest first, each marked changed against the one before."""

    query_parameters = {"GET": ("url", *PAGING)}

    async def get(self) -> None:
        query = continue_listing(self, "history", {"url": _url})
        url = query.filters.get("url")
        if url is None:
            raise ApiError.of(Code.MISSING_URL, "give the URL whose history you want: /history?url=https://...")
        page = await HistoryService(self.service).history(url, query.limit, query.store_cursor)
        self.write_json({"url": url, "results": [e.to_json() for e in page.items],
                         "next": query.next(page.next_cursor)})


class DiffHandler(BaseAPIHandler):
    """GET what changed from the result of `?against=` (old) to this one (new)."""

    query_parameters = {"GET": ("against",)}

    async def get(self, task_id: str) -> None:
        raw = self.get_query_argument("against", None)
        if not raw:
            raise ApiError.of(Code.MISSING_AGAINST, "name the older result to compare with: "
                           f"/results/{task_id}/diff?against=OTHER_ID (GET /history?url= lists a URL's results)")
        against = parse_id(raw)
        self.write_json(await HistoryService(self.service).diff(task_id, against or ""))


class StorageHandler(BaseAPIHandler):
    """GET the storage figures: results, distinct bodies, their raw bytes and the bytes stored for them."""

    async def get(self) -> None:
        self.write_json(await HistoryService(self.service).storage())


def history_routes(api: str, id_pattern: str) -> list[tuple[str, type[BaseAPIHandler]]]:
    """The routes of this module, for make_app."""
    return [
        (rf"{api}/history/?", HistoryHandler),
        (rf"{api}/results/{id_pattern}/diff/?", DiffHandler),
        (rf"{api}/stats/storage/?", StorageHandler),
    ]
