"""Standard Webhooks signatures (standardwebhooks.com): `v1,` + base64 HMAC-SHA256 of id.timestamp.body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from jobqueue.models import TaskIds

PREFIX = "whsec_"


class SecretError(ValueError):
    """A --webhook-secret that is not in the whsec_<base64> format."""


class WebhookSigner:
    """Signs delivery bodies with the server's secret; built once in main()."""

    def __init__(self, secret: str) -> None:
        if not secret.startswith(PREFIX):
            raise SecretError("--webhook-secret must look like whsec_<base64>, as Standard Webhooks secrets do "
                              "(make one with: python3 -c \"import base64,os;print('whsec_'+base64.b64encode("
                              "os.urandom(32)).decode())\")")
        try:
            self.key = base64.b64decode(secret[len(PREFIX):], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SecretError("--webhook-secret: the part after whsec_ is not valid base64") from exc
        if len(self.key) < 16:
            raise SecretError("--webhook-secret: the key must be at least 16 bytes (24 base64 characters)")

    def sign(self, message_id: str, timestamp: int, body: bytes) -> str:
        """The webhook-signature header value for one attempt."""
        signed = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(self.key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three Standard Webhooks headers of one attempt."""
        return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": self.sign(message_id, timestamp, body)}


class MessageIds:
    """Delivery ids, kept for every attempt so receivers can drop repeats. They sort by creation time, so
    the outbox's unique index grows at its end instead of taking random inserts (a fifth of the cost)."""

    def __init__(self) -> None:
        self._ids = TaskIds()

    def __call__(self) -> str:
        return "msg_" + self._ids.new()
