"""The one error a Firecrawl request is refused with: 400 `{"success": false, "error": "..."}` naming the field."""

from __future__ import annotations

from typing import Any

from jobqueue.errors import BadRequest, Code


class Refused(BadRequest):
    """A Firecrawl field or value jobqueue does not do, or a malformed one: never silently dropped."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.INVALID_FIELD, message)


def whole(raw: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    """A whole-number field within bounds (JSON numbers such as 5.0 count), or Refused naming it."""
    value = raw.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not low <= value <= high:
        raise Refused(f"{name}: must be a whole number from {low} to {high}")
    return int(value)


def flag(raw: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false field, or Refused naming it."""
    value = raw.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Refused(f"{name}: must be true or false")
    return value


def strings(raw: dict[str, Any], name: str, most: int = 100) -> list[str]:
    """A list of strings (absent or null: empty), or Refused naming it."""
    value = raw.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > most or not all(isinstance(v, str) and v for v in value):
        raise Refused(f"{name}: must be a list of at most {most} non-empty strings")
    return list(value)
