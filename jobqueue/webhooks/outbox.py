"""Which deliveries a state change creates: the outbox rows a store writes in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from jobqueue.models import CANCELLED, COMPLETED, FAILED, Batch, Crawl, Task, iso
from jobqueue.webhooks.delivery import Delivery
from jobqueue.webhooks.signing import MessageIds
from jobqueue.webhooks.spec import DEFAULT_EVENTS, WebhookSpec

EVENT_OF_STATUS = {COMPLETED: "task.completed", FAILED: "task.failed", CANCELLED: "task.cancelled"}


class Outbox:
    """Turns finished tasks and batches into deliveries; stores call it inside their write transaction.

    `per_endpoint` (--webhook-concurrency) is how many deliveries to one endpoint may be in flight at once
    across every process on the database: the store's claim_deliveries takes one of the endpoint's slots
    for each delivery it hands out (None: no limit in the store).
    """

    def __init__(self, global_url: str | None = None, new_id: Callable[[], str] | None = None,
                 per_endpoint: int | None = None) -> None:
        self.global_url = global_url
        self.new_id = new_id or MessageIds()
        self.per_endpoint = per_endpoint

    def may_notify(self, task: Task) -> bool:
        """Cheap pre-check: could this task's change create any delivery (before reading its batch)?"""
        return (task.status in EVENT_OF_STATUS
                and (self.global_url is not None or task.webhook is not None or task.batch_id is not None))

    def for_task(self, task: Task, batch_hook: WebhookSpec | None, now: float,
                 views: Mapping[str, Any] | None = None) -> list[Delivery]:
        """The deliveries of a task that just finished: its own webhook, its batch's, and --webhook-url. A
        completed job with `formats` carries those of its body's `views` as `data.result`."""
        event = EVENT_OF_STATUS.get(task.status)
        if event is None:
            return []
        targets = self._targets(event, (task.webhook, batch_hook))
        if not targets:
            return []
        data: dict[str, Any] = {"task": task.to_json()}
        if views is not None and task.formats and task.status == COMPLETED:
            data["result"] = {name: views[name] for name in task.formats if name in views}
        payload = encode({"type": event, "timestamp": iso(now), "data": data})
        return [Delivery(id=self.new_id(), event=event, url=url, payload=payload, created_at=now, task_id=task.id,
                         batch_id=task.batch_id, updated_at=now, next_attempt_at=now) for url in targets]

    def for_url_change(self, task: Task, previous_id: str, hook: WebhookSpec | None, now: float) -> list[Delivery]:
        """The deliveries of a recurring run whose body differs from the previous run's (`url.changed`)."""
        targets = self._targets("url.changed", (task.webhook, hook))
        if not targets:
            return []
        payload = encode({"type": "url.changed", "timestamp": iso(now),
                          "data": {"task": task.to_json(), "previous_id": previous_id}})
        return [Delivery(id=self.new_id(), event="url.changed", url=url, payload=payload, created_at=now,
                         task_id=task.id, batch_id=task.batch_id, updated_at=now, next_attempt_at=now)
                for url in targets]

    def for_batch(self, batch: Batch, batch_hook: WebhookSpec | None, now: float) -> list[Delivery]:
        """The deliveries of a batch that just finished (every job done, cancelled or failed)."""
        targets = self._targets("batch.finished", (batch_hook,))
        if not targets:
            return []
        payload = encode({"type": "batch.finished", "timestamp": iso(now), "data": {"batch": batch.to_json()}})
        return [Delivery(id=self.new_id(), event="batch.finished", url=url, payload=payload, created_at=now,
                         batch_id=batch.id, updated_at=now, next_attempt_at=now) for url in targets]

    def for_crawl(self, crawl: Crawl, crawl_hook: WebhookSpec | None, now: float) -> list[Delivery]:
        """The deliveries of a crawl that just finished (no page of it left to fetch) or was cancelled."""
        if crawl_hook is not None and crawl_hook.events == DEFAULT_EVENTS:  # the defaults: the end of the group
            crawl_hook = WebhookSpec(crawl_hook.url, (*DEFAULT_EVENTS, "crawl.finished"))
        targets = self._targets("crawl.finished", (crawl_hook,))
        if not targets:
            return []
        payload = encode({"type": "crawl.finished", "timestamp": iso(now), "data": {"crawl": crawl.to_json()}})
        return [Delivery(id=self.new_id(), event="crawl.finished", url=url, payload=payload, created_at=now,
                         updated_at=now, next_attempt_at=now) for url in targets]

    def _targets(self, event: str, hooks: tuple[WebhookSpec | None, ...]) -> list[str]:
        urls = [hook.url for hook in hooks if hook is not None and hook.wants(event)]
        if self.global_url is not None:
            urls.append(self.global_url)
        return list(dict.fromkeys(urls))


def encode(message: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
