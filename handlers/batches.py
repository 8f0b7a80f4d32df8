"""`/batches`: many URLs submitted at once (up to 100,000), followed, cancelled and retried as one."""

from __future__ import annotations

from jobqueue.idempotency import StoredAnswer
from jobqueue.models import Batch
from jobqueue.service import MAX_BATCH_URLS
from jobqueue.submission import QUERY_FIELDS

from .base import BaseAPIHandler
from .paging import PAGING, continue_listing
from .submit import SubmitHandler

API = "/jobqueue/api/v1.0"


class BatchListHandler(SubmitHandler):
    """POST a batch (JSON or text/plain, every line validated first); GET batches, newest first."""

    request_size_setting = "max_batch_request_size"
    query_parameters = {"GET": PAGING, "POST": tuple(QUERY_FIELDS)}

    async def post(self) -> None:
        key = self.idempotency_key()
        batch_id = self.service.new_batch_id()
        submission = await self.read_submission(MAX_BATCH_URLS, batch_id)

        def render(batch: Batch) -> StoredAnswer:
            return self.answer(201, {"batch": batch.to_json()}, f"{API}/batches/{batch.id}")

        async def work() -> None:
            batch = await self.service.submit_batch(submission, batch_id, self.client_key, key, render)
            self.replay(render(batch))

        await self.once(key, work)

    async def get(self) -> None:
        query = continue_listing(self, "batches", {})
        page = await self.service.batches(query.limit, query.store_cursor)
        self.write_json({"batches": [b.to_json() for b in page.items], "next": query.next(page.next_cursor)})


class BatchHandler(BaseAPIHandler):
    """GET one batch with its counts; DELETE cancels every unfinished job of it."""

    async def get(self, batch_id: str) -> None:
        self.write_json({"batch": (await self.service.batch(batch_id)).to_json()})

    async def delete(self, batch_id: str) -> None:
        self.write_json({"batch": (await self.service.cancel_batch(batch_id)).to_json()})


class BatchRetryHandler(BaseAPIHandler):
    """POST queues the batch's failed jobs again."""

    async def post(self, batch_id: str) -> None:
        self.write_json({"batch": (await self.service.retry_batch(batch_id)).to_json()})
