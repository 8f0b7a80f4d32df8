"""The private-address guard: a pure policy, then real connections that must never happen."""

from __future__ import annotations

import ipaddress

import pytest

from jobqueue.addresses import AddressPolicy, is_public, parse_ip, unwrap
from jobqueue.fetcher import Fetcher, FetchError, FetchSettings
from jobqueue.urls import InvalidURL, normalize_url
from tests.helpers import API, Api
from tests.target import ConnectionCounter

GUARDED = AddressPolicy.build(False)

REFUSED = [
    "127.0.0.1", "127.1.2.3", "0.0.0.0", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1", "198.18.0.1", "::1", "::", "fe80::1",
    "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "2002:a9fe:a9fe::1",
    "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
    # IPv4-compatible, SIIT and NAT64 forms are judged by the IPv4 address they carry
    "::127.0.0.1", "::7f00:1", "::10.0.0.1", "::a9fe:a9fe", "::224.0.0.1", "::ffff:0:127.0.0.1",
    "::ffff:0:a9fe:a9fe", "64:ff9b::10.0.0.1", "64:ff9b::224.0.0.1",
    # the local-use NAT64 prefix hides where its IPv4 address sits; reserved IPv6 space is not routable
    "64:ff9b:1::7f00:1", "64:ff9b:1::808:808", "4000::1", "::ffff:0:0:7f00:1",
]
ALLOWED = [
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::1",
    "::8.8.8.8", "::ffff:0:8.8.8.8", "64:ff9b::8.8.8.8",
]


@pytest.mark.parametrize("text", REFUSED)
def test_non_public_addresses_are_refused(text):
    assert not GUARDED.allows(text)


@pytest.mark.parametrize("text", ALLOWED)
def test_public_addresses_are_allowed(text):
    assert GUARDED.allows(text)
    assert is_public(ipaddress.ip_address(text))


@pytest.mark.parametrize("text,inner", [
    ("::ffff:127.0.0.1", "127.0.0.1"), ("::127.0.0.1", "127.0.0.1"), ("::7f00:1", "127.0.0.1"),
    ("::ffff:0:127.0.0.1", "127.0.0.1"), ("64:ff9b::a9fe:a9fe", "169.254.169.254"), ("2002:7f00:1::", "127.0.0.1"),
    ("::1", "::1"), ("::", "::"), ("2606:4700:4700::1111", "2606:4700:4700::1111"), ("10.0.0.1", "10.0.0.1"),
])
def test_unwrap_finds_the_ipv4_address_an_ipv6_form_carries(text, inner):
    assert str(unwrap(ipaddress.ip_address(text))) == inner


@pytest.mark.parametrize("text,expected", [
    ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("[::1]", "::1"), ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"), ("example.com", None), ("", None),
])
def test_ip_literals_are_read_like_a_resolver_does(text, expected):
    parsed = parse_ip(text)
    assert (str(parsed) if parsed else None) == expected


def test_policy_switches():
    assert AddressPolicy.build(True).allows("10.0.0.1")
    narrow = AddressPolicy.build(False, ["127.0.0.1/32"])
    assert narrow.allows("127.0.0.1") and narrow.allows("::ffff:127.0.0.1")
    assert not narrow.allows("127.0.0.2") and not narrow.allows("::1") and not narrow.allows("not-an-ip")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost:8080/", "http://LOCALHOST./", "http://foo.localhost/", "http://[::1]/",
    "http://0x7f.1/", "http://2130706433/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
    "http://[::ffff:169.254.169.254]/", "http://127.0.0.1.:8080/", "http://0x7f.1./", "http://127.0.0.1../",
    "http://%31%32%37.0.0.1:8080/", "http://%31%32%37%2e0%2e0%2e1/", "http://user:pw@%31%32%37.0.0.1/",
    "http://%6c%6F%63%61%6c%68%6f%73%74:8080/", "http://[::127.0.0.1]/", "http://[::7f00:1]:8080/",
    "http://[::ffff:0:127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/", "%31%32%37.0.0.1:8080/x",
])
def test_literal_private_hosts_are_refused_at_submission(url):
    with pytest.raises(InvalidURL) as info:
        normalize_url(url, AddressPolicy())
    assert info.value.code == "blocked"


@pytest.mark.parametrize("url,stored,host", [
    ("http://EXA%6Dple.com/a%20b?q=%31", "http://example.com/a%20b?q=%31", "example.com"),
    ("http://%C3%A9xample.com/", "http://xn--xample-9ua.com/", "xn--xample-9ua.com"),
    ("https://example.com./x", "https://example.com./x", "example.com"),
])
def test_percent_encoded_hosts_are_stored_decoded(url, stored, host):
    clean = normalize_url(url, AddressPolicy())
    assert (clean.url, clean.host) == (stored, host)


@pytest.mark.parametrize("url", ["http://a%2Fb.example/", "http://a%40b.example/", "http://%ff.example/",
                                 "http://a%25b.example/", "http://%3A%3A1/", "http://%2e/"])
def test_hosts_that_decode_to_no_host_name_are_invalid(url):
    with pytest.raises(InvalidURL) as info:
        normalize_url(url, AddressPolicy())
    assert info.value.code == "invalid_url"


@pytest.mark.gen_test
@pytest.mark.parametrize("host_template", [
    "127.0.0.1", "localhost", "[::1]", "0x7f.1", "2130706433",
])
async def test_fetcher_refuses_without_sending_a_byte(host_template):
    listen = "::1" if host_template == "[::1]" else "127.0.0.1"
    counter = ConnectionCounter()
    await counter.start(listen)
    fetcher = Fetcher(FetchSettings(), GUARDED)
    try:
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(f"http://{host_template}:{counter.port}/")
        assert info.value.code == "blocked"
        assert counter.connections == 0
    finally:
        fetcher.close()
        counter.close()


@pytest.mark.gen_test
async def test_submission_refuses_private_literals_with_400(make_server):
    server = await make_server(allow_private_addresses=False)
    api = Api(f"http://127.0.0.1:{server.port}")
    for url in ("http://127.0.0.1/", "http://10.0.0.1/", "http://169.254.169.254/", "http://2130706433/"):
        got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": url})
        assert got == 400 and payload["error"]["code"] == "blocked", url
    api.close()


@pytest.mark.gen_test
async def test_disguised_loopback_hosts_are_refused_at_submission_and_decoded_when_allowed(make_server, target,
                                                                                          tmp_path):
    guarded = await make_server(allow_private_addresses=False)
    allowed = await make_server(allow_private_addresses=False, allow_networks=("127.0.0.1/32",),
                                database=f"sqlite:///{tmp_path}/allowed.db")
    guarded_api = Api(f"http://127.0.0.1:{guarded.port}")
    allowed_api = Api(f"http://127.0.0.1:{allowed.port}")
    try:
        for host in ("127.0.0.1.", "%31%32%37.0.0.1", "[::7f00:1]", "[::127.0.0.1]"):
            url = f"http://{host}:{target.port}/page/disguised"
            got, payload = await guarded_api.call("POST", f"{API}/queue_tasks", {"url": url})
            assert got == 400 and payload["error"]["code"] == "blocked", (url, payload)
        assert target.state.hits["/page/disguised"] == 0
        task = await allowed_api.submit(f"http://%31%32%37.0.0.1:{target.port}/page/decoded")
        assert task["url"] == f"http://127.0.0.1:{target.port}/page/decoded"
        done = await allowed_api.wait_finished(task["id"])
        assert done["status"] == "completed" and target.state.hits["/page/decoded"] == 1
    finally:
        guarded_api.close()
        allowed_api.close()


@pytest.mark.gen_test
async def test_redirect_from_an_allowed_target_to_a_refused_address_is_refused(make_server, target):
    trap_v4, trap_v6 = ConnectionCounter(), ConnectionCounter()
    await trap_v4.start("127.0.0.2")
    await trap_v6.start("::1")
    server = await make_server(allow_private_addresses=False, allow_networks=("127.0.0.1/32",))
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        allowed = await api.wait_finished((await api.submit(target.url("/utf8")))["id"])
        assert allowed["status"] == "completed"
        for trap_url in (f"http://127.0.0.2:{trap_v4.port}/", f"http://[::1]:{trap_v6.port}/",
                         f"http://localhost:{trap_v6.port}/"):
            task = await api.submit(target.url(f"/redirect-to?url={trap_url}"))
            task = await api.wait_finished(task["id"])
            assert task["status"] == "failed" and task["error"]["code"] == "blocked", task
            assert task["attempts"] == 1
        assert trap_v4.connections == 0 and trap_v6.connections == 0
    finally:
        api.close()
        trap_v4.close()
        trap_v6.close()
