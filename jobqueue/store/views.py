"""Derived views of stored bodies, as both backends keep them (the ViewStore role of jobqueue/store/roles.py).

The views of a body (its Markdown, text, links and metadata: jobqueue/extract/) are one JSON document, kept
once per (body sha256, extractor version) and compressed with the codec bodies use (jobqueue/history/codec.py).
They are a cache of what the extractor computes from the body: they go when the body goes (SQLite: a
trigger on `bodies`, in the deleting transaction; MongoDB: after the head is deleted, and a put that raced
the deletion takes its own views back), and a put of a newer extractor version drops the body's older views.
Views of an older version on a body nobody asks about again stay until the body goes.
"""

from __future__ import annotations

import asyncio
import logging

from jobqueue.history.codec import Packed, pack, unpack

# Larger compressed documents are not kept (the views are extracted again when asked): one MongoDB document
# holds them, under the server's 16 MiB. Only a hostile page comes near it (its body is at most --max-body-size).
MAX_STORED_BYTES = 12 * 1024 * 1024
IN_THREAD = 256 * 1024  # documents larger than this are compressed and decompressed off the event loop

log = logging.getLogger("jobqueue.store")


async def pack_views(sha256: str, document: str) -> Packed | None:
    """The document compressed for storing, or None when it is too large to keep."""
    data = document.encode("utf-8")
    packed = await asyncio.to_thread(pack, data, sha256) if len(data) > IN_THREAD else pack(data, sha256)
    if len(packed.data) > MAX_STORED_BYTES:
        log.info("the views of body %s are not kept: %d bytes compressed, over %d", sha256, len(packed.data),
                 MAX_STORED_BYTES)
        return None
    return packed


def unpack_views(codec: str, data: bytes, size: int) -> str:
    """The document a stored row or document holds (in a thread or on the loop, as the caller chooses)."""
    return unpack(codec, data, size).decode("utf-8")


async def unpack_views_async(codec: str, data: bytes, size: int) -> str:
    """unpack_views, off the event loop when the document is large."""
    if size > IN_THREAD:
        return await asyncio.to_thread(unpack_views, codec, data, size)
    return unpack_views(codec, data, size)
