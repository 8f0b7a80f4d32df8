"""What one extraction yields, the errors it can end with, and the version that keys stored views."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Views are stored keyed by the body's sha256 and this version: bump it whenever the output of `extract` changes
# for the same body (a library upgrade that changes the Markdown counts), so stale views are recomputed.
EXTRACTOR_VERSION = 1
READ_WHEN_USED = 32 * 1024  # larger documents are parsed only when a field is first used (eight at most 2-3 ms)


@dataclass
class Views:
    """The derived views of one body; plain data, so it crosses a process boundary by pickling."""

    markdown: str
    text: str
    links: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    main_content: bool = True  # False: `markdown` is the whole page (`text` is always the main content)
    document: str | None = field(default=None, compare=False, repr=False)  # these views as JSON, when known

    def as_dict(self) -> dict[str, Any]:
        """The views as JSON-ready data, for storing and for the API."""
        return {"markdown": self.markdown, "text": self.text, "links": self.links, "metadata": self.metadata}

    def to_document(self) -> str:
        """The views as the JSON document that is stored and sent between processes (made once)."""
        if self.document is None:
            self.document = json.dumps({**self.as_dict(), "main_content": self.main_content}, separators=(",", ":"),
                                       ensure_ascii=False)
        return self.document


def views_from_document(document: str) -> Views:
    """Views from their JSON document (NotHtml when it records a body without any); a large one is read only
    when a field is first used, so a completion that only passes the document on never parses it."""
    if len(document) > READ_WHEN_USED:
        return _UnreadViews(document)
    fields = json.loads(document)
    if "not_html" in fields:
        raise NotHtml(fields["not_html"])
    return Views(**fields, document=document)


class _UnreadViews(Views):
    """Views still held as their JSON document (a large one: parsing 100,000 links takes 80 ms, and a thread
    would not help, as the parser holds the GIL throughout); each field is read from it on first use."""

    def __init__(self, document: str) -> None:  # the fields are left unset: __getattr__ reads them when asked
        self.document = document
        self.main_content = not document.endswith('"main_content":false}')  # written last (a class default else)

    def __getattr__(self, name: str) -> Any:
        if name not in _FIELDS:
            raise AttributeError(name)
        fields = json.loads(self.document)  # type: ignore[arg-type]
        if "not_html" in fields:
            raise NotHtml(fields["not_html"])
        for key in _FIELDS:
            setattr(self, key, fields.get(key, [] if key == "links" else {} if key == "metadata" else ""))
        return self.__dict__[name]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Views):
            return NotImplemented
        return (self.as_dict(), self.main_content) == (other.as_dict(), other.main_content)


_FIELDS = ("markdown", "text", "links", "metadata")


class NotHtml(ValueError):
    """The body is neither HTML nor text (an image, a PDF, a zip): there is nothing readable (415 not_html)."""

    code = "not_html"


class ExtractionTimeout(TimeoutError):
    """The page took longer than its time limit to extract; its worker was stopped or abandoned."""

    code = "extraction_timeout"


class ExtractionFailed(RuntimeError):
    """The extractor broke on this page (a library error, a worker that died): the page has no views."""

    code = "extraction_failed"
