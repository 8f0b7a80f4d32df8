"""Readable views of a stored body: main-content Markdown and text, links and metadata.

`extract` computes them in the calling thread; `ExtractPool` / `extract_in_pool` run it in a bounded process
pool with a time limit per page, so the IOLoop never waits on a hostile page.
"""

from __future__ import annotations

from jobqueue.extract.core import extract
from jobqueue.extract.pool import ExtractPool, extract_in_pool
from jobqueue.extract.views import EXTRACTOR_VERSION, ExtractionFailed, ExtractionTimeout, NotHtml, Views

__all__ = ["EXTRACTOR_VERSION", "ExtractPool", "ExtractionFailed", "ExtractionTimeout", "NotHtml", "Views",
           "extract", "extract_in_pool"]
