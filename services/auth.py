"""Bearer tokens per role (CONTRACT.md §2).

Secrets are shown once and stored only as SHA-256; a presented token is hashed and its hash
compared in constant time. Roles: admin; bank (bound to one bank_code); desk (bound to a region
prefix: sees institutions whose region starts with it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.ddl import DATABASE
from services.storage.async_storage import AsyncStorage

log = logging.getLogger("fundwatch.auth")

ROLES = ("admin", "bank", "desk")


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str
    bank_code: str = ""
    region: str = ""

    def sees_region(self, region: str) -> bool:
        """Whether this caller may see an institution of ``region`` (admins see all)."""
        if self.role == "admin":
            return True
        return self.role == "desk" and region.startswith(self.region)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(role: str) -> str:
    # The role in the prefix helps an operator tell tokens apart in a vault; it grants nothing.
    return f"fw_{role}_{secrets.token_urlsafe(32)}"


class TokenStore:
    def __init__(self, storage: AsyncStorage) -> None:
        self._storage = storage
        self._by_hash: dict[str, tuple[str, Principal]] = {}

    def bootstrap_admin(self, token: str) -> None:
        digest = hash_token(token)
        self._by_hash[digest] = (digest, Principal(token_id="bootstrap-admin", role="admin"))

    def authenticate(self, token: str) -> Principal | None:
        # Tokens are printable ASCII (new_token); anything else is no token of ours. aiohttp hands
        # undecodable header bytes over as surrogates, which hashing could not even encode.
        if not (token.isascii() and token.isprintable()):
            return None
        digest = hash_token(token)
        found = self._by_hash.get(digest)
        if found is None:
            return None
        stored, principal = found
        return principal if hmac.compare_digest(stored, digest) else None

    async def load(self) -> int:
        rows = await self._storage.query(
            f"SELECT token_id, token_hash, role, bank_code, region, revoked FROM {DATABASE}.tokens FINAL"
        )
        for token_id, digest, role, bank_code, region, revoked in rows:
            if revoked:
                self._by_hash.pop(digest, None)
            else:
                self._by_hash[digest] = (digest, Principal(token_id, role, bank_code, region))
        return len(rows)

    async def create(
        self, role: str, bank_code: str = "", region: str = ""
    ) -> tuple[str, Principal, datetime]:
        token = new_token(role)
        digest = hash_token(token)
        principal = Principal(token_id=secrets.token_hex(8), role=role, bank_code=bank_code, region=region)
        created = datetime.now(UTC).replace(microsecond=0)
        await self._storage.insert(
            f"{DATABASE}.tokens",
            ["token_id", "token_hash", "role", "bank_code", "region", "created_at", "revoked", "version"],
            [[principal.token_id, digest, role, bank_code, region, created, 0, time.time_ns()]],
        )
        # only after it is durable, so a token that was answered always survives a restart
        self._by_hash[digest] = (digest, principal)
        return token, principal, created


def resolve_admin_token(configured: str, data_dir: Path) -> tuple[str, bool]:
    """The bootstrap admin token: FUNDWATCH_ADMIN_TOKEN, else the one kept under the data dir,
    else a new one written there. Returns the token and whether it was generated now."""
    if configured:
        return configured, False
    path = data_dir / "admin-token"
    if path.exists():
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            return kept, False
    token = new_token("admin")
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True
