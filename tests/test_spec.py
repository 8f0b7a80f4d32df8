"""The job spec as a pure function: every field's rules, merging, redaction and the reuse key."""

from __future__ import annotations

import pytest

from jobqueue.errors import BadRequest
from jobqueue.profiles import FetchProfiles, Profile, ProfileError, host_allowed, read_profiles
from jobqueue.spec import DEFAULT_SPEC, FetchOptions, SpecLimits, merged, parse_spec

NOW = 1_800_000_000.0
LIMITS = SpecLimits(max_body_size=1000, profiles=lambda name: ("X-Key", "Cookie") if name == "site" else None)


def parse(raw, where=""):
    return parse_spec(raw, LIMITS, where, now=NOW)


def test_an_empty_spec_is_the_default_and_stores_nothing():
    assert parse({}) is DEFAULT_SPEC
    assert DEFAULT_SPEC.fetch.to_stored() is None


def test_every_field_is_read():
    spec = parse({"fetch": {"method": "post", "headers": {"X-A": "1", "Authorization": "Bearer s"}, "body": "a=1",
                            "user_agent": "bot/1", "timeout": 5, "max_bytes": 999, "follow_redirects": False,
                            "profile": "site"},
                  "priority": -3, "not_before": "2027-01-01T00:00:00Z", "max_age": 3600, "tags": ["a", "b:c", "a"]})
    fetch = spec.fetch
    assert (fetch.method, fetch.body, fetch.user_agent, fetch.timeout, fetch.max_bytes) == ("POST", "a=1", "bot/1",
                                                                                           5.0, 999)
    assert fetch.follow_redirects is False and fetch.profile_headers == ("X-Key", "Cookie")
    assert spec.priority == -3 and spec.max_age == 3600.0 and spec.tags == ("a", "b:c")
    assert spec.not_before == 1798761600.0
    assert FetchOptions.from_stored(fetch.to_stored()) == fetch


def test_secrets_and_profile_headers_are_redacted_in_json():
    spec = parse({"fetch": {"headers": {"Authorization": "Bearer s", "cookie": "a=b", "X-A": "shown"},
                            "profile": "site"}})
    shown = spec.fetch.to_json()
    assert shown["headers"] == {"Authorization": "***", "cookie": "***", "X-A": "shown", "X-Key": "***",
                                "Cookie": "***"}
    assert "Bearer s" not in str(shown)


@pytest.mark.parametrize("raw, message", [
    ({"fetch": {"timeout": 0}}, "jobs[3].fetch.timeout: must be 1-300 seconds"),
    ({"fetch": {"timeout": 301}}, "fetch.timeout: must be 1-300 seconds"),
    ({"fetch": {"timeout": True}}, "fetch.timeout"),
    ({"fetch": {"method": "PUT"}}, "fetch.method: must be one of GET, HEAD, POST"),
    ({"fetch": {"body": "x"}}, "fetch.body: only a POST sends a body"),
    ({"fetch": {"max_bytes": 1001}}, "fetch.max_bytes: must be a whole number from 1 to the server's"),
    ({"fetch": {"profile": "nope"}}, "fetch.profile: no fetch profile is named 'nope'"),
    ({"fetch": {"headers": {"Host": "x"}}}, "fetch.headers.Host: this header is set by the fetcher"),
    ({"fetch": {"headers": {"Transfer-Encoding": "x"}}}, "Transfer-Encoding"),
    ({"fetch": {"headers": {"X-A": "a\r\nX-B: b"}}}, "line break"),
    ({"fetch": {"headers": {"Bad Name": "x"}}}, "not a valid header name"),
    ({"fetch": {"headers": {f"X-{i}": "v" for i in range(51)}}}, "the limit is 50"),
    ({"fetch": {"headers": {"X-A": "v" * 8193}}}, "at most 8192"),
    ({"fetch": {"follow_redirects": "no"}}, "fetch.follow_redirects: must be true or false"),
    ({"fetch": {"speed": 1}}, "fetch.speed: not a fetch option"),
    ({"fetch": []}, "fetch: must be a JSON object"),
    ({"priority": 11}, "priority: must be a whole number from -10 to 10"),
    ({"priority": 1.5}, "priority"),
    ({"not_before": "tomorrow"}, "not_before: 'tomorrow' is not an ISO 8601 time"),
    ({"not_before": "2099-01-01T00:00:00Z"}, "not_before: more than a year ahead"),
    ({"max_age": -1}, "max_age: must be a number of seconds above 0"),
    ({"tags": ["ok", "not ok"]}, "tags: 'not ok' is not a tag"),
    ({"tags": [str(i) for i in range(11)]}, "tags: must be a list of at most 10"),
    ({"every": 59}, "every: must be a number of seconds from 60"),
    ({"webhook": {"url": "https://x/"}}, "webhook: this server sends no webhooks; start it with --webhook-secret"),
    ({"prority": 1}, "prority: not a job field"),
])
def test_bad_fields_name_themselves(raw, message):
    with pytest.raises(BadRequest) as info:
        parse(raw, "jobs[3]" if message.startswith("jobs[3]") else "")
    assert message in info.value.message, info.value.message
    assert info.value.code in ("invalid_field", "invalid_header", "unknown_profile", "unknown_field",
                               "not_supported", "webhooks_disabled")


def test_a_job_overrides_the_top_level_field_by_field_and_fetch_key_by_key():
    top = {"urls": ["x"], "priority": 2, "tags": ["t"], "fetch": {"timeout": 5, "headers": {"A": "1", "B": "2"}}}
    job = {"url": "y", "tags": ["j"], "fetch": {"headers": {"C": "3"}, "method": "HEAD"}}
    out = merged(top, job)
    assert out == {"priority": 2, "tags": ["j"], "fetch": {"timeout": 5, "headers": {"C": "3"}, "method": "HEAD"}}
    assert merged(top, {"url": "y", "fetch": None, "priority": None}) == {k: top[k] for k in ("priority", "tags",
                                                                                            "fetch")}
    assert merged(top, {"url": "y", "fetch": {"timeout": None}})["fetch"]["timeout"] == 5


def test_the_reuse_key_covers_what_changes_the_answer():
    url = "https://example.com/"
    plain = FetchOptions()
    assert plain.reuse_key(url) == FetchOptions(timeout=9).reuse_key(url)
    different = [FetchOptions(method="HEAD"), FetchOptions(method="POST", body="a"),
                 FetchOptions(headers=(("X", "1"),)), FetchOptions(profile="p"), FetchOptions(user_agent="u"),
                 FetchOptions(follow_redirects=False), FetchOptions(max_bytes=5)]
    keys = {o.reuse_key(url) for o in different} | {plain.reuse_key(url), plain.reuse_key(url + "x")}
    assert len(keys) == len(different) + 2
    assert FetchOptions(headers=(("x-a", "1"),)).reuse_key(url) == FetchOptions(headers=(("X-A", "1"),)).reuse_key(url)


def test_profiles_read_json_and_toml_and_refuse_bad_files(tmp_path):
    good = tmp_path / "p.json"
    good.write_text('{"site": {"headers": {"X-Key": "s3cret"}, "cookies": {"sid": "abc", "t": "1"}}}')
    profiles = FetchProfiles(str(good))
    assert profiles.header_names("site") == ("X-Key", "Cookie")
    assert profiles.headers("site") == (("X-Key", "s3cret"), ("Cookie", "sid=abc; t=1"))
    toml = tmp_path / "p.toml"
    toml.write_text('[site.headers]\nX-Key = "t"\n')
    assert read_profiles(str(toml)) == {"site": Profile((("X-Key", "t"),))}
    for text, message in [("[1]", "object of named profiles"), ('{"a": {"headers": {"Host": "x"}}}', "Host"),
                          ('{"a": {"other": 1}}', '"headers" and/or "cookies"'), ("{", "not valid JSON"),
                          ('{"a": {"cookies": {"s": "a;b"}}}', "cookie 's'"),
                          ('{"a": {"hosts": []}}', '"hosts" must be a list'),
                          ('{"a": {"hosts": "x.com"}}', '"hosts" must be a list'),
                          ('{"a": {"hosts": ["https://x.com"]}}', "'https://x.com' is not a host"),
                          ('{"a": {"hosts": ["x.com:443"]}}', "'x.com:443' is not a host"),
                          ('{"a": {"hosts": ["*"]}}', "'\\*' is not a host"),
                          ('{"a": {"hosts": ["a.*.com"]}}', "is not a host")]:
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ProfileError, match=message):
            read_profiles(str(bad))
    good.write_text("{")
    assert profiles.reload() is False and profiles.header_names("site") == ("X-Key", "Cookie")
    good.write_text('{"other": {}}')
    assert profiles.reload() is True and profiles.header_names("site") is None


def test_profile_hosts_are_normalised_and_matched_exactly_or_as_subdomains(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"api": {"headers": {"X-Key": "k"}, "hosts": ["API.Example.com.", "*.example.org", '
                    '"127.0.0.1", "[::1]", "bücher.de"]}, "open": {"headers": {"X-Key": "k"}}}')
    profiles = FetchProfiles(str(path))
    assert profiles.hosts("api") == ("api.example.com", "*.example.org", "127.0.0.1", "::1", "xn--bcher-kva.de")
    assert profiles.hosts("open") is None and profiles.get("open").allows("anything.test")
    api = profiles.get("api")
    for host in ("api.example.com", "a.example.org", "a.b.example.org", "127.0.0.1", "::1", "0:0::1",
                 "xn--bcher-kva.de", "api.example.com."):
        assert api.allows(host), host
    for host in ("example.com", "x.api.example.com", "example.org", "badexample.org", "127.0.0.2", "evil.com"):
        assert not api.allows(host), host
    assert not host_allowed(("*.example.org",), "example.org.evil.com")


def test_whole_numbers_written_as_decimals_count_and_old_times_are_refused():
    spec = parse({"priority": 6.0, "fetch": {"max_bytes": 500.0}})
    assert spec.priority == 6 and isinstance(spec.priority, int) and spec.fetch.max_bytes == 500
    with pytest.raises(BadRequest, match="priority"):
        parse({"priority": 6.5})
    with pytest.raises(BadRequest, match="before 1970"):
        parse({"not_before": "0616-01-08T14:24:45Z"})


def test_iso_pads_every_field_and_rounds_to_the_millisecond():
    import re

    from jobqueue.models import iso

    assert re.fullmatch(r"0639-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", iso(-42_000_000_000.0))
    assert iso(1.0006) == "1970-01-01T00:00:01.001Z" and iso(59.9996) == "1970-01-01T00:01:00.000Z"
