"""A fake MongoDB server on 127.0.0.1 that speaks just enough OP_MSG for PyMongo, and records what it is sent.

Not a database: every find answers an empty batch, every write reports nothing matched, and a change
stream is refused as on a standalone server. It exists to see the commands exactly as the driver puts
them on the wire (`maxTimeMS`, `writeConcern`), which no mock of the client can show: PyMongo's
client-side operation timeout (CSOT) rewrites them only when it sends them.

It runs its own event loop in a thread: motor calls PyMongo's blocking code in threads and closes its
client from the caller's thread, which must not wait on the loop that serves it.
"""

from __future__ import annotations

import asyncio
import datetime
import struct
import threading
from collections.abc import Callable
from typing import Any

import bson

OP_MSG = 2013
MORE_TO_COME = 1 << 1
CHECKSUM_PRESENT = 1
CURSOR_COMMANDS = ("find", "aggregate", "listIndexes", "listCollections")

Reply = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]


def parse_op_msg(payload: bytes) -> tuple[int, dict[str, Any]]:
    """The flag bits and the command of an OP_MSG body (after the header): document sequences merged in."""
    flags = struct.unpack_from("<I", payload)[0]
    end = len(payload) - (4 if flags & CHECKSUM_PRESENT else 0)
    at, command, sequences = 4, None, {}
    while at < end:
        kind = payload[at]
        at += 1
        if kind == 0:
            size = struct.unpack_from("<i", payload, at)[0]
            command = bson.decode(payload[at:at + size])
            at += size
        else:
            size = struct.unpack_from("<i", payload, at)[0]
            stop = at + size
            name_end = payload.index(b"\x00", at + 4)
            name = payload[at + 4:name_end].decode()
            docs, pos = [], name_end + 1
            while pos < stop:
                length = struct.unpack_from("<i", payload, pos)[0]
                docs.append(bson.decode(payload[pos:pos + length]))
                pos += length
            sequences[name] = docs
            at = stop
    assert command is not None, "an OP_MSG without a body section"
    command.update(sequences)
    return flags, command


def op_msg(request_id: int, response_to: int, document: dict[str, Any]) -> bytes:
    """One OP_MSG reply carrying `document`."""
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(document)
    return struct.pack("<iiii", 16 + len(body), request_id, response_to, OP_MSG) + body


class WireServer:
    """Answers PyMongo as a standalone server would, and keeps every command it receives (`sent`)."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply  # a test's own answer to a command, or None for the default one
        self.down = False  # while set, every connection is closed unanswered, as by a server that went away
        self.sent: list[dict[str, Any]] = []
        self.port = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._next_id = 0
        self._connections = 0

    def url(self, database: str = "jobqueue", query: str = "") -> str:
        """A URL naming this server (directly: it is no replica set), with extra options."""
        options = "&".join(q for q in ("directConnection=true", query) if q)
        return f"mongodb://127.0.0.1:{self.port}/{database}?{options}"

    def commands(self, name: str, collection: str | None = None) -> list[dict[str, Any]]:
        """The commands named `name` received so far (on `collection` only, when given)."""
        with self._lock:
            return [c for c in self.sent if name in c and (collection is None or c[name] == collection)]

    def start(self) -> WireServer:
        """Listen on a free port of 127.0.0.1."""
        self._thread = threading.Thread(target=self._run, name="fake-mongod", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake MongoDB server did not start")
        return self

    def stop(self) -> None:
        """Close the port and every connection, and end the thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        connection = self._connections
        try:
            while not self.down:
                header = await reader.readexactly(16)
                length, request_id, _to, opcode = struct.unpack("<iiii", header)
                payload = await reader.readexactly(length - 16)
                if self.down or opcode != OP_MSG:
                    return  # not spoken here: close, as a server does on garbage
                flags, command = parse_op_msg(payload)
                with self._lock:
                    self.sent.append(command)
                    self._next_id += 1
                    reply_id = self._next_id
                if flags & MORE_TO_COME:
                    continue  # an unacknowledged write: no answer
                name = next(iter(command))
                answer = self.reply(name, command) if self.reply is not None else None
                if answer is None:
                    answer = self.default_reply(name, command, connection)
                writer.write(op_msg(reply_id, request_id, answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def default_reply(name: str, command: dict[str, Any], connection: int) -> dict[str, Any]:
        """What a standalone server with empty collections answers."""
        lowered = name.lower()
        if lowered in ("hello", "ismaster"):
            return {"isWritablePrimary": True, "ismaster": True, "helloOk": True, "maxBsonObjectSize": 16 * 1024 * 1024,
                    "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
                    "localTime": datetime.datetime.now(datetime.UTC), "logicalSessionTimeoutMinutes": 30,
                    "connectionId": connection, "minWireVersion": 0, "maxWireVersion": 21, "readOnly": False,
                    "ok": 1.0}
        database = command.get("$db", "test")
        if name == "aggregate" and any("$changeStream" in stage for stage in command.get("pipeline", [])):
            return {"ok": 0.0, "errmsg": "The $changeStream stage is only supported on replica sets",
                    "code": 40573, "codeName": "Location40573"}
        if name in CURSOR_COMMANDS:
            return {"cursor": {"id": 0, "ns": f"{database}.{command[name]}", "firstBatch": []}, "ok": 1.0}
        if name == "insert":
            return {"n": len(command.get("documents", [])), "ok": 1.0}
        if name == "update":
            return {"n": 0, "nModified": 0, "ok": 1.0}
        if name == "delete":
            return {"n": 0, "ok": 1.0}
        if name == "findAndModify":
            return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None, "ok": 1.0}
        if name == "count":
            return {"n": 0, "ok": 1.0}
        if name == "createIndexes":
            return {"numIndexesBefore": 1, "numIndexesAfter": 2, "createdCollectionAutomatically": False, "ok": 1.0}
        return {"ok": 1.0}
