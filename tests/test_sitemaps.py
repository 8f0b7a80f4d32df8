"""Reading a site's sitemaps (jobqueue/sitemaps.py) from a real site on 127.0.0.1, through the guarded fetcher and
the running server's robots.txt reader: robots.txt's Sitemap lines and /sitemap.xml, indexes (nested, bounded),
gzip by magic bytes, text sitemaps, and the bounds: a gzip bomb cut off, malformed XML kept up to its error, an
external entity never resolved, the URL limit, the sitemap count, the deadline, the private-address guard."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue.addresses import AddressPolicy
from jobqueue.fetcher import FetchSettings
from jobqueue.sitemaps import MAX_SITEMAP_BYTES, SitemapRead, sitemap_fetcher, sitemap_urls
from tests.sitemap_site import Site, gzip_bomb, sitemap_index, urlset

ALLOW_LOOPBACK = AddressPolicy.build(True)


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.stop()


async def read(server: Any, site_url: str, policy: AddressPolicy = ALLOW_LOOPBACK, limit: int = 1000,
               seconds: float = 30, robots: bool = True, **extra: Any) -> SitemapRead:
    fetcher = sitemap_fetcher(FetchSettings(connect_timeout=5.0, total_timeout=10.0), policy)
    try:
        return await sitemap_urls(site_url, fetcher=fetcher, robots=server.robots if robots else None, limit=limit,
                                  deadline=time.monotonic() + seconds, **extra)
    finally:
        fetcher.close()


def paths(site: Site, urls: list[str]) -> list[str]:
    return [url.removeprefix(site.base) for url in urls]


@pytest.mark.gen_test(timeout=60)
async def test_robots_sitemaps_then_sitemap_xml_indexes_gzip_and_text_in_order(jq, site):
    site.serve("/robots.txt", "User-agent: *\nDisallow: /private\n\nSitemap: {base}/index.xml\n"
               "Sitemap: {base}/list.txt\nSitemap: {base}/sitemap.xml\n", "text/plain")
    site.serve("/index.xml", sitemap_index("{base}/a.xml", "{base}/b.xml.gz", "/nested.xml"))
    shouted = site.base.replace("http://", "HTTP://")
    site.serve("/a.xml", urlset("{base}/one", "{base}/two#part", f"{shouted}/Three", "ftp://example.com/file",
                                "mailto:someone@example.com"))
    site.serve("/b.xml.gz", gzip.compress(urlset(f"{site.base}/gz-1", f"{site.base}/one")), "application/gzip",
               raw=True)
    site.serve("/nested.xml", sitemap_index("{base}/c.xml"))
    site.serve("/c.xml", b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
               b'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"><url><loc>{base}/c-page</loc>'
               b"<image:image><image:loc>{base}/picture.png</image:loc></image:image></url></urlset>")
    site.serve("/list.txt", "\ufeff{base}/text-1\r\n\n  {base}/text-2  \nnot a url\n{base}/one\n", "text/plain")
    site.serve("/sitemap.xml", urlset("{base}/from-sitemap-xml"))
    read_ = await read(jq, site.url("/some/page"))
    assert read_.errors == []
    assert paths(site, read_.sitemaps) == ["/index.xml", "/list.txt", "/sitemap.xml", "/a.xml", "/b.xml.gz",
                                           "/nested.xml", "/c.xml"]
    assert paths(site, read_.urls) == ["/text-1", "/text-2", "/one", "/from-sitemap-xml", "/two", "/Three",
                                       "/gz-1", "/c-page"]
    assert not read_.full and site.hits.count("/sitemap.xml") == 1  # listed in robots.txt: read once
    again = await read(jq, site.url("/"))
    assert again.urls == read_.urls and site.hits.count("/robots.txt") == 1  # robots.txt kept 24 h


@pytest.mark.gen_test(timeout=60)
async def test_without_robots_txt_sitemap_xml_is_read_and_its_absence_is_no_error(jq, site):
    read_ = await read(jq, site.url("/"))
    assert (read_.urls, read_.sitemaps, read_.errors) == ([], [], [])
    assert site.hits == ["/robots.txt", "/sitemap.xml"]
    site.serve("/sitemap.xml", urlset("/relative", "{base}/absolute"), "text/xml", Content_Encoding="identity")
    read_ = await read(jq, site.url("/"), robots=False)
    assert paths(site, read_.urls) == ["/relative", "/absolute"] and read_.errors == []
    read_ = await read(jq, site.url("/"), sitemaps=[site.url("/gone.xml")])  # a named one missing is an error
    assert read_.errors == [f"{site.url('/gone.xml')}: HTTP 404"]


@pytest.mark.gen_test(timeout=90)
async def test_a_gzip_bomb_is_cut_at_the_cap_whether_gzipped_on_disk_or_on_the_wire(jq, site):
    bomb = gzip_bomb(MAX_SITEMAP_BYTES + 10 * 1024 * 1024)
    assert len(bomb) < 200_000
    site.serve("/bomb.xml.gz", bomb, "application/octet-stream", raw=True)
    site.serve("/wire.xml", bomb, "application/xml", raw=True, Content_Encoding="gzip")
    site.serve("/after.xml", urlset("{base}/after"))
    read_ = await read(jq, site.url("/"), robots=False,
                       sitemaps=[site.url("/bomb.xml.gz"), site.url("/wire.xml"), site.url("/after.xml")])
    assert paths(site, read_.urls) == ["/bomb-first", "/after"]
    [on_disk, on_wire] = read_.errors
    assert on_disk.startswith(site.url("/bomb.xml.gz")) and f"inflates to more than {MAX_SITEMAP_BYTES}" in on_disk
    assert on_wire.startswith(site.url("/wire.xml")) and f"cut at {MAX_SITEMAP_BYTES} bytes" in on_wire


@pytest.mark.gen_test(timeout=60)
async def test_malformed_xml_keeps_the_urls_before_the_error_and_html_is_not_a_sitemap(jq, site):
    site.serve("/broken.xml", b"<urlset><url><loc>{base}/before</loc></url><url><loc>{base}/after</lo")
    site.serve("/soft404.xml", "<html><body><a href='/x'>x</a></body></html>", "text/html")
    site.serve("/fine.xml", urlset("{base}/fine"))
    read_ = await read(jq, site.url("/"), robots=False,
                       sitemaps=[site.url("/broken.xml"), site.url("/soft404.xml"), site.url("/fine.xml")])
    assert paths(site, read_.urls) == ["/before", "/fine"]
    assert len(read_.errors) == 2 and "not well-formed XML" in read_.errors[0]
    assert read_.errors[1] == f"{site.url('/soft404.xml')}: not a sitemap (its root element is <html>)"


@pytest.mark.gen_test(timeout=60)
async def test_external_and_internal_entities_are_never_resolved(jq, site, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("http://127.0.0.1/leaked-file")
    site.serve("/secret", "http://127.0.0.1/leaked-over-http", "text/plain")
    site.serve("/xxe.xml", f'<?xml version="1.0"?>\n<!DOCTYPE urlset [\n'
               f'  <!ENTITY file SYSTEM "file://{secret}">\n  <!ENTITY remote SYSTEM "{{base}}/secret">\n'
               '  <!ENTITY internal "{base}/expanded">\n]>\n'
               "<urlset><url><loc>&file;</loc></url><url><loc>&remote;</loc></url>"
               "<url><loc>&internal;</loc></url><url><loc>{base}/plain</loc></url></urlset>")
    read_ = await read(jq, site.url("/"), robots=False, sitemaps=[site.url("/xxe.xml")])
    assert paths(site, read_.urls) == ["/plain"] and read_.errors == []
    assert "/secret" not in site.hits


@pytest.mark.gen_test(timeout=90)
async def test_the_limit_stops_reading_and_keep_chooses_what_counts(jq, site):
    site.serve("/robots.txt", "Sitemap: {base}/huge.xml\nSitemap: {base}/more.xml\n", "text/plain")
    site.serve("/huge.xml", urlset(*(f"{{base}}/p{i}" for i in range(60_000))))
    site.serve("/more.xml", urlset("{base}/more"))
    read_ = await read(jq, site.url("/"), limit=1000)
    assert read_.full and paths(site, read_.urls) == [f"/p{i}" for i in range(1000)]
    assert "/more.xml" not in site.hits and "/sitemap.xml" not in site.hits
    odd = await read(jq, site.url("/"), limit=5, keep=lambda url: url.endswith(("1", "3", "5", "7", "9")))
    assert paths(site, odd.urls) == ["/p1", "/p3", "/p5", "/p7", "/p9"]


@pytest.mark.gen_test(timeout=90)
async def test_sitemap_count_index_depth_and_deadline_are_bounded(jq, site):
    site.serve("/many.xml", sitemap_index(*(f"{{base}}/s{i}.xml" for i in range(60))))
    for i in range(60):
        site.serve(f"/s{i}.xml", urlset(f"{{base}}/page{i}"))
    read_ = await read(jq, site.url("/"), robots=False, sitemaps=[site.url("/many.xml")])
    assert len(read_.sitemaps) == 50 and len(read_.urls) == 49  # the index is one of the 50 fetches
    assert read_.errors == [f"{site.url('/many.xml')}: 11 of its sitemaps are not read (at most 50 sitemaps)"]
    assert sum(1 for hit in site.hits if hit.startswith("/s")) == 49
    site.serve("/d0.xml", sitemap_index("{base}/d1.xml"))
    site.serve("/d1.xml", sitemap_index("{base}/d2.xml"))
    site.serve("/d2.xml", sitemap_index("{base}/d3.xml"))
    site.serve("/d3.xml", urlset("{base}/too-deep"))
    read_ = await read(jq, site.url("/"), robots=False, sitemaps=[site.url("/d0.xml")])
    assert paths(site, read_.sitemaps) == ["/d0.xml", "/d1.xml", "/d2.xml"] and read_.urls == []
    assert read_.errors == [f"{site.url('/d2.xml')}: an index 3 levels deep; its sitemaps are not read"]
    site.hits.clear()
    late = await read(jq, site.url("/"), robots=False, seconds=0, sitemaps=[site.url("/s1.xml")])
    assert late.errors == [f"{site.url('/s1.xml')}: not read (out of time)"] and site.hits == []


@pytest.mark.gen_test(timeout=60)
async def test_the_address_guard_applies_to_every_sitemap_and_every_redirect(jq, site):
    site.serve("/sitemap.xml", urlset("{base}/guarded"))
    refused = await read(jq, site.url("/"), policy=AddressPolicy.build(False), robots=False)
    assert refused.urls == [] and len(refused.errors) == 1 and ": blocked (" in refused.errors[0]
    assert site.hits == []
    site.serve("/moved.xml", "", status=301, Location="/sitemap.xml")
    moved = await read(jq, site.url("/"), robots=False, sitemaps=[site.url("/moved.xml")])
    assert paths(site, moved.urls) == ["/guarded"]
