"""Readable views of stored results, computed once per stored body and extractor version and kept in the
store, so a thousand jobs that fetched the same page cost one extraction."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from jobqueue.extract import EXTRACTOR_VERSION, ExtractPool, NotHtml, Views
from jobqueue.extract.views import views_from_document
from jobqueue.models import Result
from jobqueue.store.base import Store

log = logging.getLogger(__name__)


def views_document(views: Views) -> str:
    """The views as the store keeps them (the JSON `ReadableViews.of` reads back); made by the extraction's
    worker, so the IOLoop only passes it on."""
    return views.to_document()


class ReadableViews:
    """The one way the service gets a result's views: from the store when a process already extracted them,
    else from the bounded extraction pool (off the IOLoop, with a time limit), then kept for every process."""

    def __init__(self, store: Store, pool: ExtractPool, on_extracted: Callable[[], None] | None = None) -> None:
        self.store = store
        self.pool = pool
        self.on_extracted = on_extracted  # counts real extractions (a metric), not answers from the store
        self.extractions = 0

    async def of(self, result: Result, *, main_content: bool = True, keep: bool = True) -> Views:
        """The views of a result's body (NotHtml, ExtractionTimeout or ExtractionFailed when it has none).
        Only the main-content views are kept; the whole page's Markdown is made on each ask. `keep=False` is for
        a completing job, whose completion keeps them with its body (a put before it would find no body)."""
        if main_content:
            stored = await self.store.get_views(result.sha256, EXTRACTOR_VERSION)
            if stored is not None:
                return views_from_document(stored)
        body = result.body
        if body is None:
            full = await self.store.get_result(result.id, with_body=True)
            body = full.body if full is not None else None
        if body is None:
            raise NotHtml("the result has no stored body")
        try:
            views = await self.pool.extract(body, result.content_type, result.encoding, result.final_url,
                                            main_content=main_content)
        except NotHtml as exc:
            if main_content:  # remembered too, so a binary body is not handed to a worker again
                await self.store.put_views(result.sha256, EXTRACTOR_VERSION, json.dumps({"not_html": str(exc)}))
            raise
        self.extractions += 1
        if self.on_extracted is not None:
            self.on_extracted()
        if main_content and keep:
            await self.store.put_views(result.sha256, EXTRACTOR_VERSION, views_document(views))
        return views
