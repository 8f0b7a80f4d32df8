"""Request text the API reads, checked to be Unicode it can store and send: JSON bodies and query strings.

Python's JSON reader takes `"\\ud800"` (a lone UTF-16 surrogate) and even raw surrogate bytes, giving
strings that cannot be encoded as UTF-8 again: stored, hashed or written back in an error, each would
fail as a 500. They are refused here, once, with a 400 naming where they were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jobqueue.errors import BadRequest, Code

# what can produce a lone surrogate in a JSON body: an escape of one, or the raw bytes of one (CESU-8)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHAPE = 'send {"url": "..."} or {"urls": [...]}'


def parse_json_body(body: bytes | bytearray) -> Any:
    """The body parsed as JSON, or a 400 `invalid_json` that says what is wrong with it."""
    if not body.strip():
        raise BadRequest(Code.INVALID_JSON, "the request body is empty; send a JSON object")
    if b"\xed" in body and _SURROGATE_BYTES.search(body):
        raise BadRequest(Code.INVALID_JSON, "the request body is not valid UTF-8 (it holds the bytes of a UTF-16 "
                       "surrogate); send JSON as UTF-8")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(Code.INVALID_JSON, f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest(Code.INVALID_JSON, f"the request body nests arrays or objects too deeply; {_SHAPE}") from exc
    if b"\\u" in body and _SURROGATE_ESCAPE.search(body):
        where = lone_surrogate_at(value)
        if where is not None:
            raise BadRequest(Code.INVALID_JSON, f"{where}: holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                           "escape), which is not a character; send valid Unicode")
    return value


def lone_surrogate_at(value: Any) -> str | None:
    """Where the first string holding a lone surrogate is (`jobs[2].url`, `a key of fetch.headers`), or None.

    Paired surrogate escapes (an emoji written `\\ud83d\\ude00`) are joined by the JSON reader, so any
    surrogate left in a string is a lone one.
    """
    stack: list[tuple[Any, str]] = [(value, "the body")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where
        elif isinstance(item, Mapping):
            prefix = "" if where == "the body" else f"{where}."
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return f"a key of {where}"
                stack.append((child, f"{prefix}{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
    return None


def query_text(name: str, raw: bytes) -> str:
    """A query parameter's value as text: UTF-8, or a 400 `invalid_parameter` (never silently replaced)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(Code.INVALID_PARAMETER, f"?{name}= is not UTF-8 text once percent-decoded; percent-encode "
                       "the UTF-8 bytes of the text") from None
