"""Readable views of a stored body, on the committed corpus: main text kept and boilerplate dropped, charset,
links, metadata and bodies that are not HTML."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from jobqueue.charset import detect_encoding
from jobqueue.extract import EXTRACTOR_VERSION, NotHtml, Views, extract

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "readable")
PAGES = sorted(name[:-5] for name in os.listdir(CORPUS) if name.endswith(".html"))


def flat(text: str) -> str:
    return " ".join(text.split())


def load(name: str) -> tuple[bytes, dict[str, Any]]:
    with open(os.path.join(CORPUS, name + ".html"), "rb") as handle:
        body = handle.read()
    with open(os.path.join(CORPUS, name + ".json")) as handle:
        return body, json.load(handle)


def views_of(name: str, **options: Any) -> Views:
    """The views as the service computes them: with the charset the fetcher determined for the response."""
    body, expect = load(name)
    encoding, _source = detect_encoding(body, expect["content_type"])
    return extract(body, expect["content_type"], encoding, expect["final_url"], **options)


def test_the_corpus_has_every_kind_of_page():
    assert {"article", "docs", "forum", "product", "latin1_meta", "base_href"} <= set(PAGES)


@pytest.mark.parametrize("name", PAGES)
def test_main_content_keeps_the_key_sentences_and_drops_the_boilerplate(name):
    _body, expect = load(name)
    views = views_of(name)
    for view in (views.markdown, views.text):
        for sentence in expect["keep"]:
            assert flat(sentence) in flat(view), (name, sentence)
        for sentence in expect["drop"]:
            assert flat(sentence) not in flat(view), (name, sentence)


def test_the_whole_page_keeps_what_main_content_drops():
    views = views_of("article", main_content=False)
    assert not views.main_content
    assert "Sign up for our morning newsletter" in views.markdown
    assert "took with them seven of the nine bridges" in views.markdown
    assert "Sign up for our morning newsletter" not in views.text  # the text stays the main content


def test_docs_markdown_keeps_code_and_tables():
    markdown = views_of("docs").markdown
    assert "```" in markdown and "def download(url: str) -> bytes:" in markdown
    assert "| `max_delay` | 60 | Upper bound of any single delay, in seconds. |" in markdown
    assert "`retry`" in markdown
    # a same-page anchor resolves against the page, not its host's root
    assert "https://docs.pipekit.example/en/2.3/retries.html#configuring-retries" in markdown
    text = views_of("docs").text
    assert "](https://" not in text and "`retry`" not in text and "retry policy" in text  # no Markdown markup


def test_a_page_declared_latin1_only_in_meta_has_its_accents():
    body, expect = load("latin1_meta")
    assert "Préchauffez".encode() not in body  # the file really is latin-1
    views = views_of("latin1_meta")
    assert "Préchauffez le four à 150 °C." in views.text
    assert views.metadata["title"] == "Crème brûlée à l'ancienne - Cuisine de grand-mère"
    # without the fetcher's answer, the same sniffing is done here
    assert "une croûte dorée" in extract(body, "text/html", None, expect["final_url"]).text


def test_links_are_resolved_normalized_deduplicated_and_in_page_order():
    links = views_of("base_href").links
    assert [link["url"] for link in links] == [
        "https://static.example.com/library/index.html",  # ../ from <base href>, not from the final URL
        "https://static.example.com/library/v2/",  # #top: the base itself, fragment dropped
        "https://static.example.com/library/v2/guide/upgrading.html",  # once, though linked twice
        "https://static.example.com/library/v2/api.html",  # "  api.html  " is the same link
        "http://static.example.com:443/library/v2/api.html",  # 443 is not http's default port
        "https://mirror.example.net:8080/lib/",  # scheme-relative takes the base's scheme
        "https://static.example.com/downloads/archive-2.0.tar.gz",
        "https://other.example.org/",
        "http://legacy.example.org/old?id=7",
    ]
    assert not [link for link in links if link["url"].startswith(("mailto:", "javascript:", "ftp:", "tel:"))]
    by_url = {link["url"]: link for link in links}
    assert by_url["https://static.example.com/downloads/archive-2.0.tar.gz"] == {
        "url": "https://static.example.com/downloads/archive-2.0.tar.gz", "text": "source tarball",
        "rel": "nofollow noopener"}
    assert by_url["https://static.example.com/library/v2/guide/upgrading.html"]["text"] == "upgrading guide"


def test_links_without_base_resolve_against_the_final_url():
    links = views_of("article").links
    urls = [link["url"] for link in links]
    assert urls[0] == "https://news.example.org/"
    assert "https://news.example.org/2021/07/valley-floods" in urls
    assert "https://news.example.org/reports/bridges-final.pdf" in urls
    assert not [url for url in urls if url.startswith("mailto:")]
    assert len(urls) == len(set(urls))
    product = [link["url"] for link in views_of("product").links]
    assert "https://shop.trailhouse.example/returns" in product and not [u for u in product if "javascript" in u]


def test_an_image_link_then_a_text_link_to_one_url_keeps_the_words():
    body = (b'<html><body><a href="/x"><img src="x.png"></a> <a href="/x#more">Read more</a>'
            b'<a href="HTTP://Example.ORG:80/y">Y</a><a href="https://exa%mple.org:99999/">bad port</a></body></html>')
    links = extract(body, "text/html", "utf-8", "http://example.org/page").links
    assert links == [{"url": "http://example.org/x", "text": "Read more", "rel": ""},
                     {"url": "http://example.org/y", "text": "Y", "rel": ""}]


def test_metadata_fields():
    assert views_of("article").metadata == {
        "title": "How the river towns rebuilt their bridges | The Valley Courier",
        "description": "After the 2021 floods, three river towns rebuilt their bridges with a shared design and a "
                       "shared budget.",
        "language": "en",
        "canonical_url": "https://news.example.org/2024/03/river-towns-bridges",
        "og": {"title": "How the river towns rebuilt their bridges", "type": "article",
               "image": "https://news.example.org/img/bridge-1200.jpg", "site_name": "The Valley Courier"},
    }
    product = views_of("product").metadata
    assert product["language"] == "en-GB" and product["og"]["price:amount"] == "89.00"
    # absent values are left out: no canonical link, no og:* here
    assert set(views_of("docs").metadata) == {"title", "description", "language", "canonical_url"}
    assert set(views_of("latin1_meta").metadata) == {"title", "description", "language"}
    assert views_of("base_href").metadata["description"] == "What changed in version 2 of the archive library."


@pytest.mark.parametrize(("body", "content_type"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "image/png"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", None),
    (b"\x00\x01\x02binary labelled as html", "text/html"),
    (b'{"a": 1}', "application/json"),
])
def test_a_body_that_is_not_html_or_text_is_refused(body, content_type):
    with pytest.raises(NotHtml) as caught:
        extract(body, content_type, None, "https://example.org/file")
    assert caught.value.code == "not_html"


def test_plain_text_is_its_own_markdown_and_text():
    views = extract("Grüße aus Köln\nZeile zwei\n".encode("cp1252"), "text/plain", "cp1252", "https://e.org/a.txt")
    assert views.text == views.markdown == "Grüße aus Köln\nZeile zwei\n"
    assert views.links == [] and views.metadata == {}


def test_empty_and_odd_documents_give_empty_views_not_errors():
    assert extract(b"", "text/html", "utf-8", "https://e.org/").markdown == ""
    odd = b'<?xml version="1.0" encoding="utf-8"?>\n<html><body><p>X\x01ML \xc3\xa9t\xc3\xa9</p></body></html>'
    assert "XML été" in extract(odd, "application/xhtml+xml", "utf-8", "https://e.org/").text


def test_the_views_are_plain_data_with_a_version():
    assert EXTRACTOR_VERSION
    data = views_of("forum").as_dict()
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("base", [
    "http://127.0.0.1:8080/dir/page", "https://Example.COM/a?q=1", "http://example.com:80/x", "https://h:443/",
    "http://user@example.com/p", "http://example.com:0080/p", "http://xn--bcher-kva.example/p#frag",
    "http://example.com", "http://example.com:99999/p", "HTTP://EXAMPLE.com/p", "http://bücher.example/p",
])
def test_the_urls_a_crawl_follows_are_the_links_views_urls(base):
    """A crawl reads a page's links without their text (cheaper): the URLs must be exactly the links view's, in its
    order, whatever shape the page's own URL has."""
    import lxml.html

    from jobqueue.extract.links import _normalize_slow, extract_links, link_urls

    hrefs = ["/abs", "rel", "../up", "?q=2", "#top", "//other.example/x", "https://EXAMPLE.com:443/y#f", "/abs",
             "mailto:a@b", "javascript:void(0)", " /spaced ", "http://[::1]:81/v6", "/ü", "", "http://h:99999/"]
    html = "<html><body>" + "".join(f'<a href="{h}">{i}</a>' for i, h in enumerate(hrefs)) + "</body></html>"
    want = [link["url"] for link in extract_links(lxml.html.document_fromstring(html), base)]
    assert link_urls(lxml.html.document_fromstring(html), base) == want
    slow = [found[0] for found in (_normalize_slow(h, base) for h in hrefs) if found]  # urljoin, no shortcut
    assert want == list(dict.fromkeys(slow))
