"""`/hosts`: per-host pacing, listed, shown and set (jobqueue/hosts.py); a policy is kept in the store, so every
process obeys it."""

from __future__ import annotations

import time

from jobqueue.errors import BadRequest, Code
from jobqueue.filters import MAX_TEXT, parse_host
from jobqueue.hosts import HostInfo, read_policy_change

from .base import ApiError, BaseAPIHandler
from .paging import PAGING, continue_listing


def _substring(raw: str | None) -> str | None:
    """`?q=`: a part of a host name (lower case), at most MAX_TEXT characters."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TEXT:
        raise BadRequest(Code.INVALID_FILTER, f"q must be at most {MAX_TEXT} characters")
    return raw.lower()


class _HostsBase(BaseAPIHandler):
    def shown(self, info: HostInfo) -> dict[str, object]:
        """A host as the API shows it, with the server's defaults filled in where its policy has none."""
        config = self.config
        return info.to_json(config.per_host, round(config.host_delay * 1000), time.time())


class HostListHandler(_HostsBase):
    """GET the hosts with unfinished jobs or a policy, by name."""

    query_parameters = {"GET": (*PAGING, "q")}

    async def get(self) -> None:
        query = continue_listing(self, "hosts", {"q": _substring})
        page = await self.service.store.list_hosts(query.filters.get("q"), query.limit, query.store_cursor)
        self.write_json({"hosts": [self.shown(info) for info in page.items], "next": query.next(page.next_cursor)})


class HostHandler(_HostsBase):
    """GET one host; PUT sets its policy (a field left out stays, null resets it to the server's default)."""

    def _host(self, raw: str) -> str:
        try:
            host = parse_host(raw)
        except BadRequest as exc:
            raise ApiError.of(Code.INVALID_HOST, exc.message.replace("host must be", "the path must end with")
                              ) from None
        if host is None:
            raise ApiError.of(Code.INVALID_HOST, "the path must end with a host name like example.com")
        return host

    async def get(self, raw: str) -> None:
        host = self._host(raw)
        info = await self.service.store.get_host(host)
        if info is None:
            raise ApiError.of(Code.NOT_FOUND, f"the host {host} has no queued or running job and no policy")
        self.write_json({"host": self.shown(info)})

    async def put(self, raw: str) -> None:
        host = self._host(raw)
        change = read_policy_change(self.get_json_body())
        info = await self.service.store.set_host_policy(host, change.max_concurrency, change.min_delay_ms,
                                                       change.paused, change.keep)
        self.service.wake_workers()  # a host resumed (or given more room) starts at once, not at the next poll
        self.write_json({"host": self.shown(info)})


def host_routes(api: str) -> list[tuple[str, type[BaseAPIHandler]]]:
    """The routes of this module, for make_app."""
    return [(rf"{api}/hosts/?", HostListHandler), (rf"{api}/hosts/([^/]+)/?", HostHandler)]
