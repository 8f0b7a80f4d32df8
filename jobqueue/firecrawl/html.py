"""Firecrawl's `html` format: the page's HTML without scripts and styles, its non-main parts left out when
`onlyMainContent` asks, narrowed by `includeTags` and `excludeTags`, links made absolute.

Selectors are the simple ones Firecrawl users write: a tag (`article`), a class (`.post`), an id (`#main`), or a tag
with a class or id (`div.post`, `div#main`); anything else is refused before a job is made.
"""

from __future__ import annotations

import re

import lxml.etree
import lxml.html
from lxml.html import HtmlElement

from jobqueue.extract.core import parse
from jobqueue.firecrawl.errors import Refused

_SELECTOR = re.compile(r"^([a-zA-Z][a-zA-Z0-9-]*)?(?:([.#])([A-Za-z_][A-Za-z0-9_-]*))?$")
_NEVER = ("script", "style", "noscript", "template", "meta", "link", "head")
# what Firecrawl leaves out of a page's main content (its excludeNonMainTags), in the selectors read here
NOT_MAIN = ("header", "footer", "nav", "aside", ".header", ".top", ".navbar", "#header", ".footer", ".bottom",
            "#footer", ".sidebar", ".side", ".aside", "#sidebar", ".modal", ".popup", "#modal", ".overlay", ".ad",
            ".ads", ".advert", "#ad", ".lang-selector", ".language", "#language-selector", ".social",
            ".social-media", ".social-links", "#social", ".menu", ".navigation", "#nav", ".breadcrumbs",
            "#breadcrumbs", ".share", "#share", ".widget", "#widget", ".cookie", "#cookie")

Selector = tuple[str | None, str | None, str | None]  # tag, "." or "#", name


def read_selectors(values: list[str], field: str) -> list[Selector]:
    """Check `includeTags` / `excludeTags` (Refused naming the first selector this reader cannot apply)."""
    out: list[Selector] = []
    for value in values:
        match = _SELECTOR.match(value.strip())
        if match is None or not value.strip():
            raise Refused(f"{field}: {value[:64]!r} is not supported; give a tag (article), a class (.post), an id "
                          "(#main) or a tag with one of them (div.post)")
        tag, kind, name = match.groups()
        out.append((tag.lower() if tag else None, kind, name))
    return out


def _matches(element: HtmlElement, selector: Selector) -> bool:
    tag, kind, name = selector
    if tag is not None and element.tag != tag:
        return False
    if kind == ".":
        return name in (element.get("class") or "").split()
    if kind == "#":
        return element.get("id") == name
    return True


def _drop(tree: HtmlElement, selectors: list[Selector]) -> None:
    doomed = [el for el in tree.iter() if isinstance(el.tag, str) and any(_matches(el, s) for s in selectors)]
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()


def clean_html(text: str, base: str, *, main_only: bool, include: list[Selector], exclude: list[Selector]) -> str:
    """The cleaned HTML of a page's text (runs in a thread or an extraction worker)."""
    tree = parse(text)
    if tree is None:
        return ""
    for element in list(tree.iter(lxml.etree.Comment)):
        if element.getparent() is not None:
            element.drop_tree()
    _drop(tree, [(tag, None, None) for tag in _NEVER])
    if main_only:
        _drop(tree, read_selectors(list(NOT_MAIN), "onlyMainContent"))
    if exclude:
        _drop(tree, exclude)
    try:
        tree.make_links_absolute(base, resolve_base_href=True, handle_failures="ignore")
    except ValueError:
        pass
    if include:
        kept = [el for el in tree.iter() if isinstance(el.tag, str) and any(_matches(el, s) for s in include)]
        # an element inside one already kept comes with it
        within = set(kept)  # the proxies in `kept` stay alive, so lxml hands back the same objects
        chosen = [el for el in kept if not any(anc in within for anc in el.iterancestors())]
        return "".join(lxml.html.tostring(el, encoding="unicode") for el in chosen)
    body = tree.find("body")
    root = body if body is not None else tree
    return lxml.html.tostring(root, encoding="unicode")
