"""A fetch profile's `hosts` beyond ASCII, through the real server: each name is made ASCII as submitted URLs'
hosts are (UTS #46, non-transitional), so the profile goes to exactly the hosts it lists however they are
written, and a name that is no valid internationalized domain name stops the start (or a reload) with the
reason."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from jobqueue.config import ConfigError
from tests.helpers import API, Api

KEY = "k-123"


def write(path: Any, hosts: list[str]) -> None:
    path.write_text(json.dumps({"intl": {"headers": {"X-Api-Key": KEY}, "hosts": hosts}}), encoding="utf-8")


async def submit(api: Api, url: str) -> tuple[int, Any]:
    return await api.call("POST", f"{API}/queue_tasks", {"url": url, "fetch": {"profile": "intl"}})


@pytest.mark.gen_test(timeout=60)
async def test_profile_hosts_beyond_ascii_match_the_hosts_submissions_store(make_server, tmp_path):
    profiles = tmp_path / "profiles.json"
    write(profiles, ["faß.example", "*.Bücher.example", "XN--N3H.example"])
    server = await make_server(fetch_profiles=str(profiles))
    await server.pool.stop()  # nothing is fetched: these hosts are off this machine
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        assert server.profiles.hosts("intl") == ("xn--fa-hia.example", "*.xn--bcher-kva.example", "xn--n3h.example")
        for url in ("https://faß.example/", "https://xn--fa-hia.example/a", "https://shop.bücher.example/",
                    "https://☃.example/"):
            code, body = await submit(api, url)
            assert code == 201, (url, body)
        code, body = await submit(api, "https://fass.example/")  # ß is kept (non-transitional): another host
        assert code == 400 and body["error"]["code"] == "profile_not_allowed", body
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_an_invalid_profile_host_stops_the_start_and_a_reload_with_the_reason(make_server, tmp_path, caplog):
    profiles = tmp_path / "profiles.json"
    for bad, reason in (("xn--a.example", "the label 'xn--a'"), ("\u0301a.example", "begins with a combining mark"),
                        ("a\u05d0.example", "right-to-left")):
        write(profiles, [bad])
        with pytest.raises(ConfigError) as info:
            await make_server(fetch_profiles=str(profiles))
        message = str(info.value)
        assert f'"hosts" entry {bad!r} is not a valid internationalized domain name (IDNA)' in message, message
        assert reason in message and "profile 'intl'" in message, message
    write(profiles, ["bücher.example"])
    server = await make_server(fetch_profiles=str(profiles))
    write(profiles, ["xn--a.example"])
    with caplog.at_level(logging.ERROR, logger="jobqueue.profiles"):
        assert server.profiles.reload() is False  # what SIGHUP calls
    assert any("not a valid internationalized domain name" in r.getMessage() for r in caplog.records)
    assert server.profiles.hosts("intl") == ("xn--bcher-kva.example",)  # the previous profiles stay in use
