"""The `webhook` field of a job or batch spec: where to send which events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import BadRequest, InvalidURL
from jobqueue.urls import normalize_url

TASK_EVENTS = ("task.completed", "task.failed", "task.cancelled")
EVENTS = (*TASK_EVENTS, "batch.finished", "url.changed", "crawl.finished")
# batch.finished only ever comes for a batch; a crawl's webhook with these gets crawl.finished (Outbox.for_crawl)
DEFAULT_EVENTS = (*TASK_EVENTS, "batch.finished")
MAX_WEBHOOK_URL = 2048


@dataclass(frozen=True)
class WebhookSpec:
    """One endpoint and the events it asked for."""

    url: str
    events: tuple[str, ...] = DEFAULT_EVENTS

    def wants(self, event: str) -> bool:
        """True when this endpoint subscribed to `event`."""
        return event in self.events

    def to_json(self) -> dict[str, Any]:
        """The stored and shown form."""
        return {"url": self.url, "events": list(self.events)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> WebhookSpec | None:
        """Rebuild what `to_json` wrote (None stays None)."""
        if not raw:
            return None
        return cls(url=str(raw["url"]), events=tuple(raw.get("events") or DEFAULT_EVENTS))


# Checks a webhook URL (scheme, host, the private-address policy) and returns it normalised;
# raises BadRequest. None means the server has no --webhook-secret, so webhooks are off.
URLCheck = Callable[[Any, str], str]


def parse_webhook(raw: Any, check_url: URLCheck | None, where: str) -> WebhookSpec:
    """Validate a spec's `webhook` value; without a server secret it is refused as webhooks_disabled."""
    if check_url is None:
        raise BadRequest("webhooks_disabled", f"{where}: this server sends no webhooks; start it with "
                         "--webhook-secret=whsec_... to enable them")
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, dict):
        raise BadRequest("invalid_field", f'{where}: must be an object like {{"url": "https://...", "events": '
                         '["task.completed"]}')
    unknown = sorted(set(raw) - {"url", "events"})
    if unknown:
        raise BadRequest("unknown_field", f"{where}.{unknown[0]}: not a webhook field; the fields are url, events")
    url = raw.get("url")
    if not isinstance(url, str) or not url or len(url) > MAX_WEBHOOK_URL:
        raise BadRequest("invalid_field", f"{where}.url: must be an http(s) URL of at most {MAX_WEBHOOK_URL} "
                         "characters")
    url = check_url(url, f"{where}.url")
    events = raw.get("events")
    if events is None:
        chosen = DEFAULT_EVENTS
    else:
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise BadRequest("invalid_field", f"{where}.events: must be a non-empty list of event names: "
                             f"{', '.join(EVENTS)}")
        bad = [e for e in events if e not in EVENTS]
        if bad:
            raise BadRequest("invalid_field", f"{where}.events: unknown event {bad[0][:64]!r}; the events are "
                             f"{', '.join(EVENTS)}")
        chosen = tuple(dict.fromkeys(events))
    return WebhookSpec(url=url, events=chosen)


def url_checker(policy: AddressPolicy) -> URLCheck:
    """The check webhook URLs get at submission: the rules and the private-address guard of fetched URLs."""

    def check(raw: Any, where: str) -> str:
        try:
            return normalize_url(raw, policy).url
        except InvalidURL as exc:
            raise BadRequest(exc.code, f"{where}: {exc.message}") from exc

    return check
