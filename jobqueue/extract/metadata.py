"""A page's metadata from its <head>: title, description, language, canonical URL and Open Graph fields."""

from __future__ import annotations

from typing import Any

from lxml.html import HtmlElement

from jobqueue.extract.links import normalize_link


def _clean(value: str | None) -> str:
    return " ".join((value or "").split())


def extract_metadata(tree: HtmlElement, base: str) -> dict[str, Any]:
    """{title, description, language, canonical_url, og{...}} with absent values left out."""
    named: dict[str, str] = {}
    og: dict[str, str] = {}
    for meta in tree.iter("meta"):
        content = _clean(meta.get("content"))
        if not content:
            continue
        prop = _clean(meta.get("property")).lower()
        if prop.startswith("og:"):
            og.setdefault(prop[3:], content)  # a repeated og:image: the first is the main one
        name = _clean(meta.get("name") or meta.get("http-equiv")).lower()
        if name:
            named.setdefault(name, content)
    out: dict[str, Any] = {}
    title = next((_clean(node.text_content()) for node in tree.iter("title")), "") or og.get("title", "")
    if title:
        out["title"] = title
    description = named.get("description") or og.get("description")
    if description:
        out["description"] = description
    language = _clean(tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang"))
    language = language or named.get("content-language", "").split(",")[0].strip()
    if language:
        out["language"] = language
    for link in tree.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            canonical = normalize_link(link.get("href") or "", base)
            if canonical:
                out["canonical_url"] = canonical
            break
    if og:
        out["og"] = og
    return out
