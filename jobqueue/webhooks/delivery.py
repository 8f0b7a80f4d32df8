"""A webhook delivery as stored in the outbox, and what one sending attempt did to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jobqueue.models import iso

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)


@dataclass
class Delivery:
    """One event for one endpoint; its id is the `webhook-id` of every attempt."""

    id: str
    event: str
    url: str
    payload: bytes
    created_at: float
    task_id: str | None = None
    batch_id: str | None = None
    status: str = PENDING
    attempts: int = 0
    updated_at: float = 0.0
    next_attempt_at: float | None = None
    last_http_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    lease_token: str | None = None

    @property
    def endpoint(self) -> str:
        """Scheme, host and port: what per-endpoint concurrency limits count by."""
        return endpoint_of(self.url)

    def to_json(self) -> dict[str, Any]:
        """The delivery as `GET /webhook_deliveries` shows it (the body is not repeated)."""
        return {
            "id": self.id, "type": self.event, "url": self.url, "task_id": self.task_id, "batch_id": self.batch_id,
            "status": self.status, "attempts": self.attempts, "last_http_status": self.last_http_status,
            "last_error": self.last_error, "next_attempt_at": iso(self.next_attempt_at),
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "delivered_at": iso(self.delivered_at),
        }


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries a listing shows; every field narrows it (AND)."""

    status: str | None = None
    task_id: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one attempt ended in: delivered, pending again at `next_attempt_at`, or failed for good."""

    status: str
    http_status: int | None = None
    error: str | None = None
    next_attempt_at: float | None = None


def endpoint_of(url: str) -> str:
    """The origin of a URL, lower-cased, with the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"
