"""`POST /v2/scrape`: one job, answered when it is done (woken by its own completion), within its timeout."""

from __future__ import annotations

from jobqueue.errors import Code, CodedError
from jobqueue.firecrawl.documents import document, page_error
from jobqueue.firecrawl.errors import Refused
from jobqueue.firecrawl.scrape_options import SCRAPE_FIELDS, read_scrape_options, unknown_fields
from jobqueue.models import COMPLETED
from jobqueue.task_waiters import wait_finished

from .base import FirecrawlHandler

_GUARDED = ("blocked_address", "blocked_by_robots")  # the job was refused by policy, not by the site


class ScrapeHandler(FirecrawlHandler):
    """POST {url, formats, ...}: {"success": true, "data": document}; a 404 page is a success with statusCode 404."""

    async def post(self) -> None:
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise Refused("send a JSON object such as {\"url\": \"https://example.com/\"}")
        unknown_fields(body, SCRAPE_FIELDS | {"url"}, "scrape")
        if "url" not in body:
            raise Refused("url: missing")
        request = read_scrape_options(body)
        service = self.service
        submission = await service.reader.from_json({"url": body["url"], **request.spec}, 1)
        task = (await service.submit(submission, self.client_key))[0]
        done = await wait_finished(self.hub, service.store, task, request.timeout_ms / 1000)
        if done is None:
            self.fail(404, f"the job {task.id} was deleted before it finished", Code.NOT_FOUND)
            return
        if done.status not in ("completed", "failed", "cancelled"):
            try:
                await service.cancel(task.id)
            except CodedError:  # it finished meanwhile: it stays, unused
                pass
            self.fail(408, f"the scrape did not finish within its timeout of {request.timeout_ms} ms (job {task.id} "
                      "was cancelled); give a longer timeout", "SCRAPE_TIMEOUT")
            return
        if done.status != COMPLETED:
            code = done.error.code if done.error is not None else done.status
            self.fail(403 if code in _GUARDED else 422, f"the scrape of {done.url} failed: {page_error(done)}", code,
                      scrapeId=done.id)
            return
        self.succeed({"data": await document(done, service.store, self.readable, request.shape)})
