"""Full-text search of stored pages: their text, extracted after completion and handed to the store's index.

Completion stays as cheap as before: a background loop picks up results stored since its last round and
gives the store up to 100 KB of text per page to index. An HTML page is indexed by its main text (its
readable view: navigation, footers and sidebars left out), taken through ReadableViews (the bounded
extraction pool, with a time limit per page, and the views kept for the body); other textual bodies, and
an HTML page without a main text or whose extraction failed, are indexed by their whole decoded text
(HTML losing its tags, scripts and styles) as before. A page is searchable about a second after its job
completes.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from typing import Any

from jobqueue.charset import parse_content_type
from jobqueue.errors import StoreError
from jobqueue.extract import ExtractionFailed, ExtractionTimeout, NotHtml
from jobqueue.models import Result

log = logging.getLogger("jobqueue.text_index")

MAX_TEXT = 100_000
BATCH = 50
TEXTUAL = re.compile(r"^(text/|application/(?:[\w.+-]*\+)?(?:json|xml|javascript)$)")
_DROP = re.compile(r"<(script|style|noscript)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")
HTML_TYPES = ("text/html", "application/xhtml+xml")


def page_text(result: Result) -> str | None:
    """The searchable text of a stored body, or None for binary types and bodies without an encoding."""
    if result.body is None or result.encoding is None or not TEXTUAL.match(result.content_type or ""):
        return None
    text = result.body[: MAX_TEXT * 4].decode(result.encoding, errors="replace")
    if "html" in (result.content_type or "") or "xml" in (result.content_type or ""):
        text = html.unescape(_TAG.sub(" ", _DROP.sub(" ", text)))
    return " ".join(text.split())[:MAX_TEXT]  # 5x faster than a \s+ regex on a 20 KB page, same words


async def searchable_text(result: Result, views: Any | None) -> str | None:
    """What a page is found by: an HTML page's main text when `views` (ReadableViews) can give it, else its
    whole text (page_text, decoded in a worker thread)."""
    if views is not None and result.body is not None and parse_content_type(result.content_type)[0] in HTML_TYPES:
        try:
            # a cut, not a whitespace squeeze: the extractor's text is already one space or newline between words,
            # and a split and join of a whole page's text on the IOLoop took 150 us for 20 KB, milliseconds for more
            text = (await views.of(result)).text[:MAX_TEXT].strip()
        except (NotHtml, ExtractionTimeout, ExtractionFailed) as exc:
            log.info("result %s is indexed by its whole text: %s", result.id, getattr(exc, "code", exc))
        else:
            if text:
                return text
    return await asyncio.to_thread(page_text, result)


async def text_index_loop(store: Any, interval: float = 1.0, views: Any | None = None) -> None:
    """Forever: index the text of newly stored results, a batch at a time, text extracted off the IOLoop."""
    while True:
        try:
            while await index_round(store, views):
                pass
        except StoreError as exc:
            log.warning("indexing page text failed, trying again: %s", exc)
        await asyncio.sleep(interval)


async def index_round(store: Any, views: Any | None = None) -> int:
    """Index one batch of new results; how many were looked at (0 when there was nothing new)."""
    pending = await store.results_to_index(BATCH)
    if not pending:
        return 0
    if views is None:
        texts = await asyncio.to_thread(lambda: [(seq, page_text(result)) for seq, result in pending])
    else:  # one page at a time: the indexer never holds more than one of the pool's workers
        texts = [(seq, await searchable_text(result, views)) for seq, result in pending]
    await store.index_texts([(seq, text) for seq, text in texts if text], pending[-1][0])
    return len(pending)
