"""What one extraction yields, the errors it can end with, and the version that keys stored views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Views are stored keyed by the body's sha256 and this version: bump it whenever the output of `extract` changes
# for the same body (a library upgrade that changes the Markdown counts), so stale views are recomputed.
EXTRACTOR_VERSION = 1


@dataclass
class Views:
    """The derived views of one body; plain data, so it crosses a process boundary by pickling."""

    markdown: str
    text: str
    links: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    main_content: bool = True  # False: `markdown` is the whole page (`text` is always the main content)

    def as_dict(self) -> dict[str, Any]:
        """The views as JSON-ready data, for storing and for the API."""
        return {"markdown": self.markdown, "text": self.text, "links": self.links, "metadata": self.metadata}


class NotHtml(ValueError):
    """The body is neither HTML nor text (an image, a PDF, a zip): there is nothing readable (415 not_html)."""

    code = "not_html"


class ExtractionTimeout(TimeoutError):
    """The page took longer than its time limit to extract; its worker was stopped or abandoned."""

    code = "extraction_timeout"


class ExtractionFailed(RuntimeError):
    """The extractor broke on this page (a library error, a worker that died): the page has no views."""

    code = "extraction_failed"
