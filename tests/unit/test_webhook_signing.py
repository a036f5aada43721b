"""Signatures that the reference Standard Webhooks library accepts, with one key or two."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.webhooks.signing import SecretError, new_secret, secret_key, sign, webhook_headers


def test_new_secrets_are_whsec_and_32_random_bytes():
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:])) == 32


def test_signature_verifies_with_the_reference_library():
    secret = new_secret()
    body = b'{"specversion":"1.0","id":"a-1"}'
    now = int(time.time())
    headers = webhook_headers([secret], "msg_1", now, body)
    assert Webhook(secret).verify(body, headers) == {"specversion": "1.0", "id": "a-1"}


def test_during_a_rotation_both_keys_verify():
    new, old = new_secret(), new_secret()
    body = b'{"id":"a-2"}'
    headers = webhook_headers([new, old], "msg_2", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_a_changed_body_or_id_fails_verification():
    secret = new_secret()
    headers = webhook_headers([secret], "msg_3", int(time.time()), b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":1}', {**headers, "webhook-id": "msg_4"})


def test_signature_is_the_documented_hmac():
    # HMAC-SHA256 over "id.timestamp.body" with the base64 key after whsec_ (CONTRACT.md §5)
    import hashlib
    import hmac

    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    expected = base64.b64encode(hmac.new(b"k" * 32, b"msg_5.1700000000.{}", hashlib.sha256).digest()).decode()
    assert sign(secret, "msg_5", 1_700_000_000, b"{}") == "v1," + expected


@pytest.mark.parametrize("bad", ["secret", "whsec_", "whsec_***"])
def test_a_malformed_secret_is_refused(bad):
    with pytest.raises(SecretError):
        secret_key(bad)
