"""A process that owns a render pool, for test_render_orphans: it starts two browsers, puts a render of an
endless script under way, prints its pool's marker and browser process groups as one JSON line, and waits
to be killed."""

from __future__ import annotations

import asyncio
import json
import sys

from jobqueue.addresses import AddressPolicy
from jobqueue.render import RenderPool, RenderSettings, parse_render
from tests.render_site import Site


async def main(chromium: str) -> None:
    site = await Site().start()
    pool = RenderPool(RenderSettings(browsers=2, pages=2, chromium=chromium),
                      AddressPolicy.build(False, ["127.0.0.1/32"]))
    await pool.start()
    render = asyncio.ensure_future(pool.render(site.url("/endless"), parse_render(True), timeout=300))
    await asyncio.wait_for(site.served("/endless"), 60)
    print(json.dumps({"marker": pool.marker, "groups": sorted(pool.launched), "processes": pool.processes()}),
          flush=True)
    await render


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
