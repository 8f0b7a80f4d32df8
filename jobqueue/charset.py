"""Turn fetched bytes into text: pick the charset the way browsers do and say where it came from."""

from __future__ import annotations

import codecs
import re

import charset_normalizer

_META_SCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_DECL = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# WHATWG: these labels mean windows-1252 on the web.
_WEB_ALIASES = {"latin-1": "cp1252", "iso8859-1": "cp1252", "ascii": "cp1252"}
_TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/xhtml+xml",
               "application/x-www-form-urlencoded", "image/svg+xml")


def parse_content_type(header: str | None) -> tuple[str | None, str | None]:
    """Split `text/html; charset=utf-8` into the media type and the charset parameter."""
    if not header:
        return None, None
    media, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return media.strip().lower() or None, charset


def is_textual(media_type: str | None, body: bytes) -> bool:
    """Text types are decoded for the API; binary ones are served only raw."""
    if media_type is None:
        return b"\x00" not in body[:1024]
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_TYPES
        or media_type.endswith("+xml")
        or media_type.endswith("+json")
    )


def lookup(label: str | None) -> str | None:
    """Return Python's codec name for a charset label, or None when it is unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    return _WEB_ALIASES.get(name, name)


def sniff_encoding(body: bytes, header_charset: str | None, media_type: str | None) -> tuple[str, str]:
    """Pick an encoding: BOM, then header, then <meta> or XML declaration, then a detector."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, "bom"
    declared = lookup(header_charset)
    if declared:
        return declared, "header"
    head = body[:_META_SCAN_BYTES]
    if media_type is None or "html" in media_type or "xml" in media_type:
        match = _META_CHARSET.search(head) or _XML_DECL.match(head)
        if match:
            found = lookup(match.group(1).decode("ascii", "replace"))
            if found in ("utf-16-le", "utf-16-be", "utf-16"):
                found = "utf-8"  # a page readable enough to declare UTF-16 in ASCII is not UTF-16
            if found:
                return found, "meta"
    try:
        body.decode("utf-8")
        return "utf-8", "detected"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(body[:262144]).best()
    if best is not None and lookup(best.encoding):
        return lookup(best.encoding) or "utf-8", "detected"
    return "cp1252", "default"


def detect_encoding(body: bytes, content_type_header: str | None) -> tuple[str | None, str | None]:
    """The encoding a textual body decodes with and where that came from; (None, None) for binary."""
    media_type, header_charset = parse_content_type(content_type_header)
    if not is_textual(media_type, body):
        return None, None
    return sniff_encoding(body, header_charset, media_type)
