"""A screenshot PNG made small with the standard library alone: decoded, its colours cut to a palette of at most
256 (the most frequent, each other colour drawn as the nearest of them: a dashboard is mostly flat colours), and
written again as an indexed PNG at zlib's best compression. About a third of chromium's size."""

from __future__ import annotations

import struct
import zlib
from collections import Counter


def _chunks(data: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    at = 8
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        found.setdefault(kind, []).append(data[at + 8:at + 8 + size])
        at += 12 + size
    return found


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def decode(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG (what chromium writes)."""
    chunks = _chunks(data)
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError("only 8-bit RGB(A), not interlaced")
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    at = 0
    for _ in range(height):
        kind = raw[at]
        line = bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((x + y) & 255 for x, y in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                corner = previous[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, previous[i], corner)) & 255
        previous = line
        rows.append(bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
    return width, height, rows


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def shrink(data: bytes) -> bytes:
    """The same picture as an indexed PNG of at most 256 colours."""
    width, height, rows = decode(data)
    counts: Counter[int] = Counter()
    for row in rows:
        counts.update(int.from_bytes(row[i:i + 3], "big") for i in range(0, len(row), 3))
    palette = [c for c, _ in counts.most_common(256)]
    index = {c: i for i, c in enumerate(palette)}
    rgb = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in palette]

    def nearest(color: int) -> int:
        r, g, b = (color >> 16) & 255, (color >> 8) & 255, color & 255
        best = min(range(len(rgb)), key=lambda i: (rgb[i][0] - r) ** 2 * 3 + (rgb[i][1] - g) ** 2 * 4
                   + (rgb[i][2] - b) ** 2 * 2)
        index[color] = best
        return best

    out = bytearray()
    for row in rows:
        out.append(0)
        for i in range(0, len(row), 3):
            color = int.from_bytes(row[i:i + 3], "big")
            found = index.get(color)
            out.append(found if found is not None else nearest(color))
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    plte = b"".join(bytes(c) for c in rgb)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"PLTE", plte)
            + _chunk(b"IDAT", zlib.compress(bytes(out), 9)) + _chunk(b"IEND", b""))
