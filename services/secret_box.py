"""Webhook secrets encrypted at rest: AES-256-GCM under FUNDWATCH_SECRET_KEY.

A subscription's signing secret must be readable by the dispatcher, so it cannot be hashed like a
bearer token; it is encrypted instead, so a copy of ClickHouse (a backup, a leaked dump, a
read-only SQL user) does not hand out the keys that make a forged alert look genuine.

A stored value is ``v1:<base64 of the 12-byte nonce and the ciphertext with its tag>``, a fresh
random nonce per value. The associated data is the subscription id: a ciphertext copied into
another subscription's row fails to open instead of signing for it. A value without the ``v1:``
prefix was written before encryption and is read as it is; the store writes it encrypted the next
time it saves the row.

The key is base64 of 32 bytes. `fundwatch run` keeps a generated one in ``<data-dir>/secret-key``
when the variable is unset; `fundwatch gateway` and `fundwatch dispatcher` refuse to start
without it, since a key made per process would leave each unable to read the other's secrets.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.config import ConfigError

ENV = "FUNDWATCH_SECRET_KEY"
KEY_FILE = "secret-key"
PREFIX = "v1:"
_NONCE_BYTES = 12


class SecretUnreadable(RuntimeError):
    """A stored secret does not open with this key: another key, or a value moved between rows."""


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


def parse_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{ENV} must be base64 of 32 random bytes; it is not valid base64") from None
    if len(key) != 32:
        raise ConfigError(f"{ENV} must be base64 of 32 random bytes, got {len(key)} bytes")
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, secret: str, row_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), row_id.encode("utf-8"))
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, row_id: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written before secrets were encrypted
        try:
            raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], row_id.encode("utf-8"))
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretUnreadable(
                f"the secret of subscription {row_id!r} does not decrypt with {ENV}: the key differs "
                "from the one it was written with, or the value was altered"
            ) from None
        return plain.decode("utf-8")


def resolve(configured: str, keep_in: Path | None, command: str) -> SecretBox:
    """The key from FUNDWATCH_SECRET_KEY; else, with ``keep_in`` (the embedded stack's data dir),
    the one kept there, made on first use (0600, like the admin token); else a ConfigError."""
    if configured:
        return SecretBox(parse_key(configured))
    if keep_in is None:
        raise ConfigError(
            f"fundwatch {command} needs {ENV} (base64 of 32 random bytes, e.g. from "
            "`openssl rand -base64 32`), the same for every gateway and dispatcher: it encrypts "
            "the webhook secrets kept in ClickHouse"
        )
    path = keep_in / KEY_FILE
    if path.exists():
        return SecretBox(parse_key(path.read_text(encoding="utf-8")))
    key = new_key()
    keep_in.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite a key another start wrote meanwhile; its secrets would be lost
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return SecretBox(parse_key(path.read_text(encoding="utf-8")))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return SecretBox(parse_key(key))


_installed: SecretBox | None = None


def install(box: SecretBox) -> None:
    """The process's key, set once at start by services/runner.py for the stores made later."""
    global _installed
    _installed = box


def installed() -> SecretBox:
    if _installed is None:
        raise RuntimeError(f"no {ENV} installed: the process entry point must call secret_box.install")
    return _installed
