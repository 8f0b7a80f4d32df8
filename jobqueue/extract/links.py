"""A page's links as crawls use them: resolved against the document's base URL and normalized."""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from lxml.html import HtmlElement

from jobqueue.hostnames import to_ascii

_DEFAULT_PORTS = {"http": 80, "https": 443}
# WHATWG URL parsing drops tabs and newlines anywhere in a URL and C0 controls or spaces around it
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_EDGES = "".join(chr(c) for c in range(0x21))
# what stays literal in a path or query: every printable ASCII character but those browsers percent-encode
_PATH_SAFE = "/%:@!$&'()*+,;=-._~[]|^`{}"
_QUERY_SAFE = _PATH_SAFE + "?"
# the shapes of nearly every href, resolved without urljoin (a page of a million links spends its time there):
# a path from the root, or an absolute URL with a lower-case host and no port, all in safe characters
_PLAIN = r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*"
_ROOT_PATH = re.compile(rf"(/(?!/){_PLAIN})(?:#(.*))?", re.DOTALL)
_ABSOLUTE = re.compile(rf"(https?://[a-z0-9-]+(?:\.[a-z0-9-]+)*)(/{_PLAIN})?(?:#(.*))?", re.DOTALL)
_PLAIN_ORIGIN = re.compile(r"(https?)://([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::([0-9]{1,5}))?(?=[/?#]|$)")


def base_url(tree: HtmlElement, final_url: str) -> str:
    """The URL a document's relative links resolve against: its first <base href>, else where it was fetched from."""
    for base in tree.iter("base"):
        href = base.get("href")
        if href is not None:
            resolved = urljoin(final_url, _TAB_NEWLINE.sub("", href).strip(_EDGES))
            if urlsplit(resolved).scheme.lower() in _DEFAULT_PORTS:
                return resolved
            break
    return final_url


def normalize_link(href: str, base: str) -> str | None:
    """An absolute http(s) URL without fragment, scheme and host lower case, default port dropped; None otherwise."""
    found = _normalize(href, base, _origin(base))
    return found[0] if found else None


def _origin(base: str) -> str | None:
    """`scheme://host[:port]` of a base URL, normalized; None when it is not http(s)."""
    match = _PLAIN_ORIGIN.match(base)
    if match:
        scheme, host, port = match.groups()
        if port is None:
            return f"{scheme}://{host}"
        number = int(port)
        if number <= 65535:
            return f"{scheme}://{host}" if number == _DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{number}"
    found = _normalize_slow("/", base)
    return found[0][:-1] if found else None


def _normalize(href: str, base: str, origin: str | None) -> tuple[str, str] | None:
    """The normalized URL and the fragment it had."""
    if "/." not in href and "\\" not in href:
        match = _ROOT_PATH.fullmatch(href)
        if match and origin:
            return origin + match.group(1), match.group(2) or ""
        match = _ABSOLUTE.fullmatch(href)
        if match:
            return match.group(1) + (match.group(2) or "/"), match.group(3) or ""
    return _normalize_slow(href, base)


def _normalize_slow(href: str, base: str) -> tuple[str, str] | None:
    try:
        parts = urlsplit(urljoin(base, _TAB_NEWLINE.sub("", href).strip(_EDGES)))
        port = parts.port
    except ValueError:  # a port out of range, a broken IPv6 literal
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if not host.isascii():
        try:
            host = to_ascii(host)
        except ValueError:
            return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = quote(parts.query, safe=_QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, "")), parts.fragment


def _text(node: HtmlElement) -> str:
    return " ".join(node.text_content().split())


def link_urls(tree: HtmlElement, base: str) -> list[str]:
    """The URLs of `extract_links`, in the same order, without their text and leaving the tree as it was: what a
    crawl or a site map follows, at a fraction of the cost."""
    urls: dict[str, None] = {}
    origin = _origin(base)
    for node in tree.iter("a"):
        href = node.get("href")
        if href is not None and (found := _normalize(href, base, origin)) is not None:
            urls[found[0]] = None
    return list(urls)


def extract_links(tree: HtmlElement, base: str) -> list[dict[str, str]]:
    """Every a[href] once, in page order, as {url, text, rel}; each href is rewritten absolute for later views."""
    seen: dict[str, dict[str, str]] = {}
    resolved: dict[str, tuple[str, str] | None] = {}  # a page repeats its hrefs: each is normalized once
    origin = _origin(base)
    for node in tree.iter("a"):
        href = node.get("href")
        if href is None:
            continue
        if href in resolved:
            found = resolved[href]
        else:
            found = resolved[href] = _normalize(href, base, origin)
        if found is None:
            continue
        url, fragment = found
        # the main content's Markdown then links as the page does, fragment kept
        node.set("href", f"{url}#{fragment}" if fragment else url)
        link = seen.get(url)
        if link is None:
            seen[url] = {"url": url, "text": _text(node), "rel": " ".join((node.get("rel") or "").lower().split())}
        elif not link["text"]:  # an image link first, its text link later: keep the words
            link["text"] = _text(node)
    return list(seen.values())
