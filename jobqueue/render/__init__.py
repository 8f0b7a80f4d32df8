"""Rendering pages in a guarded pool of Chromium browsers (see docs/API.md, "Rendering in a browser")."""

from __future__ import annotations

from jobqueue.render.options import (
    BrowserDied,
    RenderingUnavailable,
    RenderOptions,
    RenderResult,
    RenderTimings,
    parse_render,
)
from jobqueue.render.pool import RenderPool, RenderSettings

__all__ = ["BrowserDied", "RenderOptions", "RenderPool", "RenderResult", "RenderSettings", "RenderTimings",
           "RenderingUnavailable", "parse_render"]
