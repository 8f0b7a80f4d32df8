"""What a recurring job's runs are compared by for `url.changed`: the body's sha256, or its main text.

With `"changed_on": "text"` a run is keyed by a digest of its main text (whitespace collapsed), computed at
completion through ReadableViews (off the IOLoop, bounded, with a time limit): a rotated ad, a footer timestamp
or a new session token in the markup changes the body but not the key. A run whose main text cannot be
extracted (not HTML, a timeout) is not compared at all, so one failed extraction raises no change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from jobqueue.extract import ExtractionFailed, ExtractionTimeout, NotHtml
from jobqueue.models import Result

log = logging.getLogger("jobqueue.history")

TEXT = "text"
NOT_COMPARED = ""  # a change_key meaning "compare nothing for this run"
_PREFIX = "text:"  # never equal to a body's sha256, should a schedule switch between the two


def text_key(text: str) -> str:
    """The key of a main text: its words, whitespace collapsed, digested."""
    return _PREFIX + hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def compares_text(task: Any) -> bool:
    """Whether the task is a run of a schedule whose runs are compared by their main text."""
    return getattr(task, "changed_on", "body") == TEXT and getattr(task, "schedule_id", None) is not None


async def change_key(task: Any, result: Result, views: Any) -> str | None:
    """The key a schedule compares this run by instead of the body's sha256 (None: the sha256 is compared)."""
    if not compares_text(task):
        return None
    limit = 3 * getattr(getattr(views, "pool", None), "timeout", 10.0)  # the page's limit, and the wait for a worker
    try:
        async with asyncio.timeout(limit):
            return text_key((await views.of(result)).text)
    except (NotHtml, ExtractionTimeout, ExtractionFailed, TimeoutError) as exc:
        log.info("run %s is not compared with the last one: its main text could not be extracted (%s)",
                 result.id, getattr(exc, "code", type(exc).__name__))
        return NOT_COMPARED


def compared_key(result: Result, sha256: str | None) -> str | None:
    """What the store compares with the schedule's last key (Result.compared_key, which the stores call)."""
    return result.compared_key(sha256)
