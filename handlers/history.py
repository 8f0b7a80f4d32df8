"""`/history`, `/results/:id/diff`, `/stats/storage`: a URL's results over time and what they take on disk."""

from __future__ import annotations

from typing import Any

from jobqueue.errors import Code
from jobqueue.extract import ExtractionFailed, ExtractionTimeout, NotHtml
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
    """GET what changed from the result of `?against=` (old) to this one (new): the bodies, or with `?view=text`
    their main texts."""

    query_parameters = {"GET": ("against", "view")}

    async def get(self, task_id: str) -> None:
        raw = self.get_query_argument("against", None)
        if not raw:
            raise ApiError.of(Code.MISSING_AGAINST, "name the older result to compare with: "
                           f"/results/{task_id}/diff?against=OTHER_ID (GET /history?url= lists a URL's results)")
        against = parse_id(raw) or ""
        view = self.get_query_argument("view", "body")
        if view not in ("body", "text"):
            raise ApiError.of(Code.INVALID_FIELD,
                              f"view is 'body' (the default) or 'text' (the main texts), not {view!r}")
        history = HistoryService(self.service)
        if view == "body":
            self.write_json(await history.diff(task_id, against))
            return
        try:
            self.write_json(await history.text_diff(task_id, against, self._readable()))
        except (NotHtml, ExtractionTimeout, ExtractionFailed) as exc:
            raise ApiError.of(Code[exc.code.upper()], f"no main text to compare: {exc}") from None

    def _readable(self) -> Any:
        """The service's ReadableViews (built once by the app)."""
        views = getattr(self.service, "readable", None) or self.application.settings.get("readable")
        if views is None:
            raise ApiError.of(Code.UNAVAILABLE, "readable views are not available in this process")
        return views


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
