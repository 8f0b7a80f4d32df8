"""Builds the webhook pieces from the server's settings: the outbox, the URL check, the sender."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobqueue.addresses import AddressPolicy
from jobqueue.config import ConfigError, Settings
from jobqueue.errors import BadRequest
from jobqueue.metrics import Metrics
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.sender import SenderSettings, WebhookSender
from jobqueue.webhooks.signing import WebhookSigner
from jobqueue.webhooks.spec import URLCheck, url_checker


@dataclass
class Webhooks:
    """What main() wires in: all None when no --webhook-secret is set (webhooks off)."""

    outbox: Outbox | None = None
    check_url: URLCheck | None = None
    signer: WebhookSigner | None = None

    @classmethod
    def from_settings(cls, settings: Settings, policy: AddressPolicy) -> Webhooks:
        """Check --webhook-url against the same rules as a spec's webhook (ConfigError if it fails)."""
        if settings.webhook_secret is None:
            return cls()
        check = url_checker(policy)
        global_url = None
        if settings.webhook_url is not None:
            try:
                global_url = check(settings.webhook_url, "--webhook-url")
            except BadRequest as exc:
                raise ConfigError(exc.message) from None
        return cls(Outbox(global_url, per_endpoint=settings.webhook_concurrency), check,
                   WebhookSigner(settings.webhook_secret))

    def sender(self, store: Any, policy: AddressPolicy, metrics: Metrics, settings: Settings) -> WebhookSender | None:
        """The sending loop's owner, or None when webhooks are off."""
        if self.signer is None:
            return None
        return WebhookSender(store, self.signer, policy, metrics, SenderSettings(
            retry_delays=settings.retry_delays, per_endpoint=settings.webhook_concurrency,
            timeout=settings.webhook_timeout, lease_seconds=settings.webhook_timeout + 5))
