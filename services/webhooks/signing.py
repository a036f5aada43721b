"""Standard Webhooks signatures (CONTRACT.md §5).

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the key is the base64 text
after ``whsec_``; the signature is ``v1,`` and the base64 HMAC-SHA256. During a secret rotation a
message carries one signature per valid key, space-separated, so receivers switch without a gap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the contract asks for at least 24


class SecretError(ValueError):
    """A stored secret is not ``whsec_`` and base64."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise SecretError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise SecretError("a webhook secret is whsec_ and base64") from None
    if not key:
        raise SecretError("a webhook secret has a key after whsec_")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(keys: list[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per key, newest key first."""
    return " ".join(sign(key, webhook_id, timestamp, body) for key in keys)


def webhook_headers(keys: list[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, webhook_id, timestamp, body),
    }
