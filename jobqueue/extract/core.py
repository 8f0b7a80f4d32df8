"""One body turned into its readable views, in the calling thread (the pool runs this in its workers)."""

from __future__ import annotations

import copy
import re
from typing import Any

import lxml.etree
import lxml.html
from lxml.html import HtmlElement

from jobqueue.charset import lookup, parse_content_type, sniff_encoding
from jobqueue.extract.links import base_url, extract_links
from jobqueue.extract.metadata import extract_metadata
from jobqueue.extract.views import NotHtml, Views

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# lxml refuses a str holding these (XML 1.0 forbids them); browsers drop or replace them too
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SNIFF_HTML = re.compile(rb"^\s*(?:<!doctype\s+html|<html|<head|<body|<!--|<meta|<title|<div|<p\b)", re.IGNORECASE)
_WIDE = ("utf-16", "utf-32")
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
HEAD_LIMIT = 256 * 1024  # a page's <head> is read from its first 256 KiB
# past this many elements main-content scoring costs seconds (it grows faster than the page): such a page (a
# sitemap-like list, a hostile page) is taken whole; real articles have a few thousand
MAX_MAIN_ELEMENTS = 50_000
# imported where they are used: 13 MB and 0.3 s the server process pays only if it extracts in-process (the
# extraction pool's forkserver preloads them for its workers); parse, decode and head metadata need lxml alone
EXTRACTORS = ("html_to_markdown", "trafilatura", "trafilatura.xml")


def _kind(media_type: str | None, body: bytes, encoding: str | None) -> str:
    """'html' or 'text', or NotHtml for a body with nothing readable."""
    wide = encoding is not None and encoding.startswith(_WIDE)
    if not wide and b"\x00" in body[:1024]:
        raise NotHtml(f"the body is binary ({media_type or 'no content type'}), not HTML or text")
    if media_type in _HTML_TYPES:
        return "html"
    if media_type is None:
        return "html" if _SNIFF_HTML.match(body[:512]) else "text"
    if media_type.startswith("text/"):
        return "text"
    raise NotHtml(f"the body is {media_type}, not HTML or text")


def decode(body: bytes, charset: str | None, media_type: str | None) -> str:
    """The body as text, with the charset the fetcher determined (sniffed as it would, when not given)."""
    encoding = lookup(charset) or sniff_encoding(body, None, media_type)[0]
    text = body.decode(encoding, errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def parse(text: str) -> HtmlElement | None:
    """The document as an lxml tree, None when it holds no element at all."""
    text = _FORBIDDEN.sub("", _XML_DECLARATION.sub("", text, count=1))
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):
        return None


def whole_page_markdown(text: str, base: str) -> str:
    """The whole page as Markdown, links resolved against its base URL."""
    import html_to_markdown

    # html-to-markdown drops navigation and forms by default: the whole page means all of it
    keep_all = html_to_markdown.PreprocessingOptions(remove_navigation=False, remove_forms=False)
    options = html_to_markdown.ConversionOptions(extract_metadata=False, base_url=base, preprocessing=keep_all)
    return str(html_to_markdown.convert(text, options).content).strip() + "\n"


def find_main_content(tree: HtmlElement, url: str) -> tuple[str, str] | None:
    """The main content's Markdown and plain text, navigation and boilerplate left out; None when none is found."""
    if sum(1 for _ in tree.iter()) > MAX_MAIN_ELEMENTS:
        return None
    import trafilatura
    from trafilatura.xml import xmltotxt

    document = trafilatura.bare_extraction(tree, url=url, include_comments=True, include_tables=True,
                                           include_formatting=True, include_links=True, output_format="markdown")
    if document is None or isinstance(document, dict) or document.body is None:
        return None
    parts_md, parts_txt = [], []
    for body in (document.body, document.commentsbody):
        if body is not None:
            parts_md.append(xmltotxt(body, True))
            plain = copy.deepcopy(body)
            lxml.etree.strip_tags(plain, "ref")  # trafilatura writes links as Markdown even in its text
            parts_txt.append(xmltotxt(plain, False))
    markdown = "\n".join(part for part in parts_md if part.strip()).strip()
    if not markdown:
        return None
    return markdown + "\n", "\n".join(part for part in parts_txt if part.strip()).strip() + "\n"


def head_metadata(text: str, final_url: str) -> dict[str, Any]:
    """Metadata from a page's <head> alone (its first HEAD_LIMIT characters): what the views keep, and cheap
    enough to give with every read of a result without waiting for an extraction."""
    text = text[:HEAD_LIMIT]
    end = _HEAD_END.search(text)
    tree = parse(text[:end.end()] if end else text)
    return extract_metadata(tree, base_url(tree, final_url)) if tree is not None else {}


def page_metadata(body: bytes, content_type: str | None, charset: str | None, final_url: str) -> dict[str, Any]:
    """A stored body's metadata from its <head> ({} for plain text; NotHtml for a binary body)."""
    media_type = parse_content_type(content_type)[0]
    head = body[:HEAD_LIMIT]
    if _kind(media_type, head, lookup(charset)) == "text":
        return {}
    return head_metadata(decode(head, charset, media_type), final_url)


def extract(body: bytes, content_type: str | None, charset: str | None, final_url: str, *,
            main_content: bool = True) -> Views:
    """Markdown (main content, or the whole page), main text, links and metadata of one stored body."""
    media_type = parse_content_type(content_type)[0]
    kind = _kind(media_type, body, lookup(charset))
    text = decode(body, charset, media_type)
    if kind == "text":
        return Views(markdown=text, text=text, main_content=main_content)
    tree = parse(text)
    if tree is None:
        return Views(markdown="", text="", main_content=main_content)
    base = base_url(tree, final_url)
    links = extract_links(tree, base)
    metadata = head_metadata(text, final_url)
    found = find_main_content(tree, base)  # last: trafilatura prunes the tree it is given
    if found is None:  # no block stood out (a tiny page, a bare list): the whole page is its content
        import trafilatura

        page_text = str(trafilatura.html2txt(text) or "").strip()
        found = whole_page_markdown(text, base), page_text + "\n" if page_text else ""
    markdown, main_text = found
    if not main_content:
        markdown = whole_page_markdown(text, base)
    return Views(markdown=markdown, text=main_text, links=links, metadata=metadata, main_content=main_content)
