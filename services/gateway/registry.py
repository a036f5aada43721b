"""What the gateway knows of the reference data it judges requests by (CONTRACT.md §2).

``AccountOwners`` maps each registered account to the bank it is registered to. Batch intake
looks every record's account up in it (a dict look-up: the intake's hot path), to reject a record
of an account registered to another bank and to warn about one of an account not registered at
all. It is loaded from ``ref_accounts FINAL`` at start and learns every account upsert this
gateway accepts. Other gateways may register or move accounts meanwhile, so an account the map
does not know, or knows as another bank's, is asked of ClickHouse before it is judged: one query
for all such accounts of a batch, and the answer is trusted for ``RECHECK_S`` before it is asked
again (a bank pushing an unregistered account all day costs one query per ``RECHECK_S``).

``KnownInstitutions`` is the set of institutions stored: an account may name only one of those.
Institutions are never deleted, so what is known stays known; an unknown one is asked again.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Iterable

from schemas.ddl import DATABASE
from services.storage.async_storage import AsyncStorage

RECHECK_S = 10.0
# Ids per query: ClickHouse refuses a query text over max_query_size (256 KiB by default), and a
# batch or an upsert may name 10,000 accounts.
QUERY_CHUNK = 2000

_shared: weakref.WeakKeyDictionary[AsyncStorage, AccountOwners] = weakref.WeakKeyDictionary()


class AccountOwners:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        self.banks: dict[str, str] = {}  # account_id -> bank_code
        self._asked: dict[str, float] = {}  # account_id -> when ClickHouse last answered for it

    @classmethod
    def of(cls, storage: AsyncStorage) -> AccountOwners:
        """The one map of this storage's accounts, shared by the intake and the reference service
        of a gateway, so an upsert is seen by the next batch."""
        owners = _shared.get(storage)
        if owners is None:
            owners = _shared[storage] = cls(storage)
        return owners

    def __len__(self) -> int:
        return len(self.banks)

    async def load(self) -> int:
        rows = await self.storage.query(f"SELECT account_id, bank_code FROM {DATABASE}.ref_accounts FINAL")
        for account_id, bank_code in rows:
            self.learn(account_id, bank_code)
        return len(rows)

    def learn(self, account_id: str, bank_code: str) -> None:
        # bank codes are few and repeated for every account: one string each
        self.banks[account_id] = sys.intern(bank_code)

    def doubtful(self, bank_code: str, account_ids: Iterable[str]) -> list[str]:
        """The accounts, among ``account_ids``, not known as ``bank_code``'s and not asked of
        ClickHouse within ``RECHECK_S``: those to ask before judging their records."""
        banks, asked = self.banks, self._asked
        stale = time.monotonic() - RECHECK_S
        return [
            account_id
            for account_id in account_ids
            if banks.get(account_id) != bank_code and asked.get(account_id, -1e18) < stale
        ]

    async def ask(self, account_ids: list[str]) -> None:
        """Learn from ClickHouse the banks of these accounts (raises StorageError). An account
        found nowhere is remembered as asked, so it is not asked again for ``RECHECK_S``."""
        if not account_ids:
            return
        found: dict[str, str] = {}
        for start in range(0, len(account_ids), QUERY_CHUNK):
            chunk = tuple(account_ids[start : start + QUERY_CHUNK])
            rows = await self.storage.query(
                f"SELECT account_id, bank_code FROM {DATABASE}.ref_accounts FINAL "
                "WHERE account_id IN %(ids)s",
                {"ids": chunk},
            )
            found.update(rows)
        now = time.monotonic()
        if len(self._asked) > 100_000:  # forget answers too old to be trusted anyway
            self._asked = {a: at for a, at in self._asked.items() if at >= now - RECHECK_S}
        for account_id in account_ids:
            self._asked[account_id] = now
            bank_code = found.get(account_id)
            if bank_code is not None:
                self.learn(account_id, bank_code)
            else:  # registered nowhere: ClickHouse is the reference
                self.banks.pop(account_id, None)


class KnownInstitutions:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        self._known: set[str] = set()

    def learn(self, institution_ids: Iterable[str]) -> None:
        self._known.update(institution_ids)

    async def unknown(self, institution_ids: Iterable[str]) -> set[str]:
        """Those of ``institution_ids`` that name no stored institution (raises StorageError)."""
        asking = sorted(set(institution_ids) - self._known)
        for start in range(0, len(asking), QUERY_CHUNK):
            rows = await self.storage.query(
                f"SELECT DISTINCT institution_id FROM {DATABASE}.ref_institutions "
                "WHERE institution_id IN %(ids)s",
                {"ids": tuple(asking[start : start + QUERY_CHUNK])},
            )
            self._known.update(institution_id for (institution_id,) in rows)
        return {institution_id for institution_id in asking if institution_id not in self._known}
