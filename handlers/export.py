"""`/export`: every job a task-list filter matches, streamed as an attachment in JSON Lines, CSV or WARC."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
import time
from typing import Any
from urllib.parse import urlencode

from tornado.iostream import StreamClosedError

from jobqueue.errors import Code
from jobqueue.export import Encoder, encoder_for, walk
from jobqueue.filters import TASK_FILTERS  # those of GET /queue_tasks
from jobqueue.store.base import TaskFilter

from .base import ApiError, BaseAPIHandler

log = logging.getLogger("jobqueue.export")
CHUNK = 64 * 1024  # bytes gathered before each write and flush
MAX_EXPORTS = 4  # at once per process: each holds a store page and a few bodies, and reads for as long as it runs
STALL_SECONDS = 60.0  # an export whose reader takes no byte for this long is cut, and its place freed


class Stalled(Exception):
    """The reader took no byte of the export for `ExportHandler.stall_seconds`."""


class ExportHandler(BaseAPIHandler):
    """GET streams the matching jobs page by page, so memory stays flat and a slow reader slows the walk; a
    reader that stops reading altogether loses its export after `stall_seconds`, so a few stalled sockets
    (any read-only token can open them) cannot hold every export place for as long as they stay open."""

    running = 0  # exports in progress in this process
    stall_seconds = STALL_SECONDS  # tests shorten it
    query_parameters = None  # _read_query checks them itself, saying why an export takes no cursor

    async def get(self) -> None:
        where, encoder, stem = self._read_query()
        if ExportHandler.running >= MAX_EXPORTS:
            raise ApiError.of(Code.TOO_MANY_EXPORTS, f"{MAX_EXPORTS} exports are already running on this server; "
                           "try again when one has finished", headers={"Retry-After": "10"})
        ExportHandler.running += 1
        try:
            await self._stream(where, encoder, stem)
        finally:
            ExportHandler.running -= 1

    def _read_query(self) -> tuple[TaskFilter, Encoder, str]:
        """The filter, the format and the file name, all checked before a byte of the answer is sent."""
        known = {"format", "with", *TASK_FILTERS}
        unknown = sorted(set(self.request.query_arguments) - known)
        if unknown:
            raise ApiError.of(Code.UNKNOWN_PARAMETER, f"/export takes no parameter {unknown[0]!r}; it takes "
                           f"{', '.join(sorted(known))} (an export has no pages: it always runs to the end)")
        filters = {name: parse(self.get_query_argument(name, None)) for name, parse in TASK_FILTERS.items()}
        filters = {name: value for name, value in filters.items() if value is not None}
        stem = time.strftime("jobqueue-export-%Y%m%dT%H%M%SZ", time.gmtime())
        encoder = encoder_for(self.get_query_argument("format", None), stem, self.config.user_agent,
                              urlencode(sorted(filters.items())), self.get_query_argument("with", None))
        where = TaskFilter(**filters)
        self.service.check_filter(where)
        return where, encoder, stem

    async def _stream(self, where: TaskFilter, encoder: Encoder, stem: str) -> None:
        async with contextlib.aclosing(walk(self.service.store, where, encoder.with_body, views=self.readable,
                                                 wanted=encoder.views)) as items:
            # the first page is read before the headers go out: a store that fails at once gets a JSON error
            first = await anext(items, None)
            self.set_header("Content-Type", encoder.media_type)
            self.set_header("Content-Disposition", f'attachment; filename="{stem}.{encoder.extension}"')
            pending = bytearray(encoder.begin())
            sent = False
            try:
                item = first
                while item is not None:
                    pending += encoder.encode(item)
                    if len(pending) >= CHUNK:
                        self.write(bytes(pending))
                        pending.clear()
                        sent = True
                        await self._drain()  # waits for the socket: a slow reader slows the walk
                    item = await anext(items, None)
                pending += encoder.end()
            except StreamClosedError:
                self._cut("client_gone")  # the reader went away: nothing to tell anyone
                return
            except Stalled:
                log.info("export cut: its reader took nothing for %g s", self.stall_seconds,
                         extra={"path": self.request.path})
                self._cut("client_stalled")
                return
            except Exception:
                if not sent:
                    raise  # nothing sent yet: the usual JSON error
                log.exception("export cut short by an error", extra={"path": self.request.path})
                self._cut("export_interrupted")
                return
        self.finish(bytes(pending))

    async def _drain(self) -> None:
        """Flush, as long as the reader takes bytes: Stalled once the socket has taken none for `stall_seconds`
        (a slow reader is waited for; one that reads nothing is not)."""
        flushed = self.flush()
        stream = getattr(self.request.connection, "stream", None)
        seen = _taken(stream)
        while True:
            try:
                async with asyncio.timeout(self.stall_seconds):
                    await asyncio.shield(flushed)
                return
            except TimeoutError:
                now = _taken(stream)
                if now is None or now == seen:
                    raise Stalled from None
                seen = now

    def _cut(self, code: str) -> None:
        """End a response whose headers went out without its end: the client sees an incomplete download.

        With chunked encoding the terminating chunk is what says "complete"; closing the connection before
        it (rather than finishing) is the only way to tell a reader the export is not whole.
        """
        self.error_code = code  # for the access log line
        connection = self.request.connection
        if connection is not None:
            connection.close()  # type: ignore[attr-defined]  # an HTTP1Connection; the interface has no close
        with contextlib.suppress(StreamClosedError):
            future = self.finish()
            future.add_done_callback(lambda f: f.exception())  # a write to the closed stream; expected


def _taken(stream: Any) -> int | None:
    """How many bytes of the answer the reader has acknowledged: what the stream handed the socket (Tornado's
    count) less what the kernel still holds unacknowledged (TIOCOUTQ). The kernel's send buffer alone can
    hold megabytes, enough to hide a slow reader's progress for minutes. None when Tornado keeps no count."""
    written = getattr(stream, "_total_write_done_index", None)
    sock = getattr(stream, "socket", None)
    if written is None or sock is None:
        return None
    try:
        queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, ValueError):  # not a socket this system can tell about: the stream's own count
        return written
    return written - queued
