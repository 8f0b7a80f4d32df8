"""A crawl's scope (host, domain, prefix), include and exclude patterns, and the key that tells its pages apart."""

from __future__ import annotations

import pytest

from jobqueue.crawl_scope import CrawlOptions, Scope, crawl_key, parse_options
from jobqueue.errors import BadRequest


def scope(kind: str, *seeds: str, **options) -> Scope:
    return Scope(list(seeds), CrawlOptions(scope=kind, **options))


def test_host_scope_keeps_the_seeds_hosts_only():
    inside = scope("host", "https://docs.example.co.uk/guide/", "http://other.test/")
    assert inside.within("https://docs.example.co.uk/api")
    assert inside.within("http://other.test/x")
    assert not inside.within("https://blog.example.co.uk/")
    assert not inside.within("https://example.co.uk/")


def test_domain_scope_keeps_the_registrable_domain_and_every_subdomain():
    inside = scope("domain", "https://docs.example.co.uk/guide/")
    for url in ("https://example.co.uk/", "https://blog.example.co.uk/post", "http://a.b.example.co.uk/"):
        assert inside.within(url), url
    for url in ("https://example.com/", "https://co.uk/", "https://notexample.co.uk/"):
        assert not inside.within(url), url
    assert scope("domain", "https://1password.com/").within("https://support.1password.com/")
    by_address = scope("domain", "http://127.0.0.1:8080/")
    assert by_address.within("http://127.0.0.1:8080/a") and not by_address.within("http://127.0.0.2/")


def test_prefix_scope_keeps_the_seeds_directory_on_its_origin():
    inside = scope("prefix", "https://example.org/docs/v2/intro")
    assert inside.within("https://example.org/docs/v2/") and inside.within("https://example.org/docs/v2/a/b")
    assert not inside.within("https://example.org/docs/v1/") and not inside.within("http://example.org/docs/v2/")
    assert not inside.within("https://example.org:8443/docs/v2/")


def test_include_and_exclude_are_searched_in_path_and_query_and_a_seed_still_expands():
    picky = scope("host", "https://example.org/", include=(r"^/docs/", r"lang=en"), exclude=(r"\.pdf$",))
    assert picky.within("https://example.org/docs/a") and picky.within("https://example.org/x?lang=en")
    assert not picky.within("https://example.org/blog/") and not picky.within("https://example.org/docs/a.pdf")
    assert not picky.within("https://example.org/") and picky.contains("https://example.org/")


def test_crawl_key_drops_the_fragment_and_with_ignore_query_the_query():
    assert crawl_key("https://example.org/a?b=1#top", False) == "https://example.org/a?b=1"
    assert crawl_key("https://example.org/a?b=1#top", True) == "https://example.org/a"
    assert crawl_key("https://example.org", False) == "https://example.org/"


@pytest.mark.parametrize("field, value", [
    ("scope", "planet"), ("max_depth", -1), ("max_depth", 101), ("max_depth", True), ("max_pages", 0),
    ("max_pages", 1_000_001), ("include", "^/docs"), ("include", ["("]), ("exclude", [""]), ("exclude", ["x" * 501]),
    ("sitemap", "sometimes"), ("robots", "maybe"), ("ignore_query", "yes"), ("include", ["a"] * 51),
])
def test_each_bad_option_is_refused_naming_its_field(field, value):
    with pytest.raises(BadRequest) as refused:
        parse_options({field: value})
    assert str(refused.value).startswith(field) or field in str(refused.value)


def test_the_options_round_trip_through_their_stored_form():
    options = parse_options({"scope": "prefix", "max_depth": 0, "max_pages": 7, "include": ["a"], "exclude": ["b"],
                             "sitemap": "only", "robots": "ignore", "ignore_query": True})
    assert CrawlOptions.from_json(options.to_json()) == options
