"""How a body is kept on disk: once per sha256, zstd-compressed above a small size, with its codec named.

A codec is stored beside every body, so a database keeps reading bodies written with any codec this
code ever used, and small bodies (where a zstd frame costs more than it saves) stay as they are.
"""

from __future__ import annotations

import hashlib
import threading
from typing import NamedTuple

import zstandard

IDENTITY = "identity"
ZSTD = "zstd"
CODECS = (IDENTITY, ZSTD)
MIN_COMPRESSED = 512  # bytes: below this a body is stored as is
LEVEL = 3  # zstd's default: about 300 MB/s here, HTML shrinks 4-8x; higher levels cost more than they save

_local = threading.local()  # zstd contexts are not thread-safe: one per thread (writer, reader, IOLoop)


class Packed(NamedTuple):
    """A body ready to store: its key, codec, original size and the bytes to write."""

    sha256: str
    codec: str
    size: int
    data: bytes


def digest(body: bytes) -> str:
    """The key of a body: its sha256 in hex."""
    return hashlib.sha256(body).hexdigest()


def pack(body: bytes, sha256: str | None = None) -> Packed:
    """Compress a body when that is worth it (not smaller: kept as is)."""
    key = sha256 or digest(body)
    if len(body) >= MIN_COMPRESSED:
        compressor = getattr(_local, "compressor", None)
        if compressor is None:
            compressor = _local.compressor = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
        data = compressor.compress(body)
        if len(data) < len(body):
            return Packed(key, ZSTD, len(body), data)
    return Packed(key, IDENTITY, len(body), bytes(body))


def unpack(codec: str, data: bytes, size: int) -> bytes:
    """The original bytes of a stored body (ValueError for a codec this code does not know)."""
    if codec == IDENTITY:
        return bytes(data)
    if codec == ZSTD:
        decompressor = getattr(_local, "decompressor", None)
        if decompressor is None:
            decompressor = _local.decompressor = zstandard.ZstdDecompressor()
        return decompressor.decompress(data, max_output_size=size)
    raise ValueError(f"a stored body has the codec {codec!r}, which this jobqueue cannot read; upgrade jobqueue")
