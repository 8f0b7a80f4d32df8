"""A finished job shaped as a Firecrawl document: the formats its request asked, and Firecrawl's metadata.

Markdown and links come from the readable views the job computed when it completed (kept in the store, so a
crawl's status reads them without extracting again); the whole page's Markdown and a page narrowed by tags are
extracted on demand in the extraction pool; the cleaned HTML is made in a thread. The stored body is read only for
what needs the page itself (html, rawHtml, a narrowed page, a page without views).
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

from jobqueue.extract import ExtractionFailed, ExtractionTimeout, NotHtml, Views
from jobqueue.extract.core import decode, page_metadata
from jobqueue.firecrawl.html import clean_html
from jobqueue.firecrawl.scrape_options import Shape
from jobqueue.models import COMPLETED, Result, Task
from jobqueue.readable import ReadableViews
from jobqueue.store.base import Store

_BASE64_IMAGE = re.compile(r"(!\[[^\]]*\])\(data:image/[^)]*\)")
_OG = {"title": "ogTitle", "description": "ogDescription", "url": "ogUrl", "image": "ogImage",
       "site_name": "ogSiteName", "locale": "ogLocale", "type": "ogType"}


def page_error(task: Task) -> str:
    """Why a job has no page, in words (a failed or cancelled job)."""
    if task.error is not None:
        return f"{task.error.code}: {task.error.message}"
    return f"the job is {task.status}"


def metadata(task: Task, result: Result | None, found: dict[str, Any]) -> dict[str, Any]:
    """Firecrawl's metadata object: the page's own (title, description, language, Open Graph) and the fetch's."""
    out: dict[str, Any] = {}
    for name in ("title", "description", "language"):
        if found.get(name):
            out[name] = found[name]
    for name, key in _OG.items():
        value = (found.get("og") or {}).get(name)
        if value:
            out[key] = value
    out["sourceURL"] = task.url
    out["url"] = result.final_url if result is not None else task.url
    out["statusCode"] = result.http_status if result is not None else (task.http_status or 0)
    if result is not None and result.content_type:
        out["contentType"] = result.content_type
    out["scrapeId"] = task.id
    out["proxyUsed"] = "basic"
    out["cacheState"] = "hit" if task.reused_from else "miss"
    out["creditsUsed"] = 1
    if task.status != COMPLETED:
        out["error"] = page_error(task)
    return out


async def _views(readable: ReadableViews, result: Result, main_content: bool) -> Views | None:
    try:
        return await readable.of(result, main_content=main_content)
    except (NotHtml, ExtractionTimeout, ExtractionFailed):
        return None


async def _narrowed_markdown(readable: ReadableViews, html: str, result: Result) -> str:
    """The Markdown of a page narrowed by includeTags/excludeTags, extracted whole in the pool."""
    try:
        views = await readable.pool.extract(html.encode(), "text/html", "utf-8", result.final_url,
                                            main_content=False)
    except (NotHtml, ExtractionTimeout, ExtractionFailed):
        return ""
    return views.markdown


async def _with_body(store: Store, result: Result) -> Result:
    """The result with its body, read only for what needs the page itself (its HTML, or no kept views)."""
    full = await store.get_result(result.id, with_body=True)
    return full if full is not None else result


async def document(task: Task, store: Store, readable: ReadableViews, shape: Shape) -> dict[str, Any]:
    """The Firecrawl document of a finished job (a failed one: its metadata with `error`)."""
    result = await store.get_result(task.id, with_body=False) if task.status == COMPLETED else None
    doc: dict[str, Any] = {}
    if result is None:
        doc["metadata"] = metadata(task, None, {})
        return doc
    wanted = shape.formats
    narrowed = bool(shape.include or shape.exclude)
    page_wanted = narrowed or "html" in wanted or "rawHtml" in wanted
    views = await _views(readable, result, True)  # kept by the job's completion: no body needed
    if views is None or page_wanted:
        result = await _with_body(store, result)
    found = views.metadata if views is not None else {}
    if views is None and result.body:
        try:
            found = await asyncio.to_thread(page_metadata, result.body, result.content_type, result.encoding,
                                            result.final_url)
        except NotHtml:
            found = {}
    text = decode(result.body, result.encoding, result.content_type) if result.body and page_wanted else ""
    cleaned: str | None = None
    if "html" in wanted or narrowed:
        cleaned = await asyncio.to_thread(clean_html, text, result.final_url, main_only=shape.main_only,
                                          include=shape.include, exclude=shape.exclude)
    if "markdown" in wanted:
        if narrowed and cleaned is not None:
            markdown = await _narrowed_markdown(readable, cleaned, result)
        elif shape.main_only:
            markdown = views.markdown if views is not None else ""
        else:
            whole = await _views(readable, result, False)
            markdown = whole.markdown if whole is not None else ""
        doc["markdown"] = markdown if shape.keep_base64 else _BASE64_IMAGE.sub(r"\1(<Base64-Image-Removed>)", markdown)
    if "html" in wanted:
        doc["html"] = cleaned or ""
    if "rawHtml" in wanted:
        doc["rawHtml"] = text
    if "links" in wanted:
        doc["links"] = [link["url"] for link in views.links] if views is not None else []
    if "screenshot" in wanted:
        shot = await store.get_artifact(task.id, "screenshot")
        if shot is not None:
            doc["screenshot"] = "data:image/png;base64," + base64.b64encode(shot).decode("ascii")
    doc["metadata"] = metadata(task, result, found)
    warning = shape.warning
    if views is None and ("markdown" in wanted or "links" in wanted):
        not_read = f"the page is {result.content_type or 'not HTML'}: it has no markdown or links"
        warning = f"{warning}; {not_read}" if warning else not_read
    if warning:
        doc["warning"] = warning
    return doc
