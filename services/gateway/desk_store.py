"""The desk workspace's queries (institutions, dossier, trace, overview, report) over ClickHouse.

Every query runs on a ClickHouse 18.16 server and on chDB alike (tests/integration/
test_desk_store.py runs each on both): no JOIN (the two disagree on its defaults; two look-ups are
joined here instead), no JSON functions but visitParamExtractString, Beijing days by arithmetic on
epoch seconds as schemas/ddl.py does. Values always go in as parameters.

Aggregate partials are read with FINAL and summed over their messages (schemas/ddl.py); alerts are
read FINAL, one row per alert, its newest revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from schemas.ddl import DATABASE
from services.gateway.reads import account_scope
from services.storage.async_storage import AsyncStorage

D = DATABASE
BEIJING_S = 28800  # UTC+8, no daylight saving since 1991


def cents(value: Decimal | None) -> int:
    return int((value or Decimal(0)) * 100)


def _prefix(prefix: str, column: str = "region") -> tuple[str, dict[str, Any]]:
    """A filter on a region prefix ("" for all)."""
    if not prefix:
        return "1 = 1", {}
    return f"substring({column}, 1, %(prefix_len)s) = %(prefix)s", {"prefix": prefix, "prefix_len": len(prefix)}


class InstitutionRow(msgspec.Struct, frozen=True):
    institution_id: str
    region: str
    type: str
    doc: dict[str, Any]


class AlertRow(msgspec.Struct, frozen=True):
    alert_id: str
    typology: str
    severity: str
    status: str
    institution_id: str
    region: str
    disposition: str  # "" while not disposed
    created_at: datetime


class DeskStore:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage

    # --- reference data --------------------------------------------------------------------------

    async def institutions(self, prefix: str = "", type_: str | None = None,
                           ids: Sequence[str] | None = None) -> list[InstitutionRow]:  # fmt: skip
        where, params = _prefix(prefix)
        if type_:
            where += " AND type = %(type)s"
            params["type"] = type_
        if ids is not None:
            if not ids:
                return []
            where += " AND institution_id IN %(ids)s"
            params["ids"] = tuple(ids)
        rows = await self.storage.query(
            f"SELECT institution_id, region, type, doc FROM {D}.ref_institutions FINAL WHERE {where} "
            "ORDER BY institution_id",
            params,
        )
        return [InstitutionRow(i, r, t, msgspec.json.decode(doc)) for i, r, t, doc in rows]

    async def accounts(self, institution_id: str | None = None, bank_code: str | None = None,
                       institution_ids: Sequence[str] | None = None, limit: int = 100_000) -> list[dict[str, Any]]:  # fmt: skip
        where, params = ["1 = 1"], {"limit": limit}
        if institution_id is not None:
            where.append("institution_id = %(inst)s")
            params["inst"] = institution_id
        if institution_ids is not None:
            if not institution_ids:
                return []
            where.append("institution_id IN %(ids)s")
            params["ids"] = tuple(institution_ids)
        if bank_code is not None:
            where.append("bank_code = %(bank)s")
            params["bank"] = bank_code
        rows = await self.storage.query(
            f"SELECT doc FROM {D}.ref_accounts FINAL WHERE {' AND '.join(where)} "
            "ORDER BY account_id LIMIT %(limit)s",
            params,
        )
        return [msgspec.json.decode(doc) for (doc,) in rows]

    async def reference_of(self, table: str, institution_id: str) -> list[dict[str, Any]]:
        """Products or related parties of one institution."""
        assert table in {"ref_products", "ref_related_parties"}
        key = "product_id" if table == "ref_products" else "party_id"
        rows = await self.storage.query(
            f"SELECT doc FROM {D}.{table} FINAL WHERE institution_id = %(inst)s ORDER BY {key}",
            {"inst": institution_id},
        )
        return [msgspec.json.decode(doc) for (doc,) in rows]

    async def account_region(self, account_id: str) -> tuple[str, str]:
        """(bank_code, region) of a registered account; ("", "") for one not registered."""
        return await account_scope(self.storage, account_id)

    # --- alerts ----------------------------------------------------------------------------------

    async def alert_rows(self, prefix: str = "", institution_ids: Sequence[str] | None = None,
                         created_from: datetime | None = None, created_to: datetime | None = None,
                         typologies: Sequence[str] | None = None) -> list[AlertRow]:  # fmt: skip
        """The current state of alerts, light: no evidence. The disposition sits in the document,
        which msgspec writes compact (visitParamExtractString reads `"key":value` without spaces)
        and in which no detector metric is named disposition."""
        where, params = _prefix(prefix)
        if institution_ids is not None:
            if not institution_ids:
                return []
            where += " AND institution_id IN %(ids)s"
            params["ids"] = tuple(institution_ids)
        if created_from is not None:
            where += " AND created_at >= %(from)s"
            params["from"] = created_from
        if created_to is not None:
            where += " AND created_at < %(to)s"
            params["to"] = created_to
        if typologies is not None:
            where += " AND typology IN %(typologies)s"
            params["typologies"] = tuple(typologies) or ("",)
        rows = await self.storage.query(
            f"""SELECT alert_id, typology, severity, status, institution_id, region,
                       visitParamExtractString(doc, 'disposition'), created_at
                FROM {D}.alerts FINAL WHERE {where}""",
            params,
        )
        return [AlertRow(*row) for row in rows]

    async def alert_docs(self, institution_id: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.storage.query(
            f"""SELECT doc FROM {D}.alerts FINAL WHERE institution_id = %(inst)s
                ORDER BY updated_at DESC, alert_id LIMIT %(limit)s""",
            {"inst": institution_id, "limit": limit},
        )
        return [msgspec.json.decode(doc) for (doc,) in rows]

    # --- flows -----------------------------------------------------------------------------------

    async def account_inflows(self, institution_ids: Sequence[str], since: datetime, until: datetime,
                              currency: str = "CNY") -> list[tuple[str, str, int]]:  # fmt: skip
        """(institution_id, account_id, inflow cents) per account of these institutions."""
        if not institution_ids:
            return []
        rows = await self.storage.query(
            f"""SELECT institution_id, account_id, sum(inflow) FROM {D}.agg_account_ccy FINAL
                WHERE grain = 'day' AND currency = %(ccy)s AND window_start >= %(since)s
                  AND window_start < %(until)s AND institution_id IN %(ids)s
                GROUP BY institution_id, account_id""",
            {"ids": tuple(institution_ids), "since": since, "until": until, "ccy": currency},
        )
        return [(inst, account, cents(inflow)) for inst, account, inflow in rows]

    async def institution_inflows(self, institution_ids: Sequence[str], since: datetime, split: datetime,
                                  until: datetime, currency: str = "CNY") -> dict[str, tuple[int, int]]:  # fmt: skip
        """institution_id -> (inflow cents in [since, split), in [split, until)), moves between
        its own accounts left out (agg_institution_ccy)."""
        if not institution_ids:
            return {}
        rows = await self.storage.query(
            f"""SELECT institution_id, sumIf(inflow, window_start < %(split)s),
                       sumIf(inflow, window_start >= %(split)s)
                FROM {D}.agg_institution_ccy FINAL
                WHERE grain = 'day' AND currency = %(ccy)s AND window_start >= %(since)s
                  AND window_start < %(until)s AND institution_id IN %(ids)s
                GROUP BY institution_id""",
            {"ids": tuple(institution_ids), "since": since, "split": split, "until": until, "ccy": currency},
        )
        return {inst: (cents(before), cents(after)) for inst, before, after in rows}

    async def daily_flows(self, institution_id: str, since: datetime) -> list[tuple[datetime, str, int, int, int, int]]:
        """(Beijing day start, currency, inflow cents, outflow cents, credits, debits), oldest first."""
        rows = await self.storage.query(
            f"""SELECT window_start, currency, sum(inflow), sum(outflow), sum(n_in), sum(n_out)
                FROM {D}.agg_institution_ccy FINAL
                WHERE institution_id = %(inst)s AND grain = 'day' AND window_start >= %(since)s
                GROUP BY window_start, currency ORDER BY window_start, currency""",
            {"inst": institution_id, "since": since},
        )
        return [(day, ccy, cents(i), cents(o), int(ni), int(no)) for day, ccy, i, o, ni, no in rows]

    # --- trace -----------------------------------------------------------------------------------

    async def outgoing(self, accounts: Sequence[str], since: datetime, until: datetime,
                       currency: str) -> list[tuple[str, str, int, int, datetime, datetime]]:  # fmt: skip
        """(account, counterparty, cents, count, first, last) of the accounts' own debit records:
        the payer's leg, so a movement whose credit leg the payee's bank pushed too counts once."""
        if not accounts:
            return []
        rows = await self.storage.query(
            f"""SELECT account_id, counterparty_account, sum(amount), count(), min(booked_at), max(booked_at)
                FROM {D}.raw_transactions FINAL
                WHERE account_id IN %(accounts)s AND direction = 'debit' AND currency = %(ccy)s
                  AND booked_at >= %(since)s AND booked_at < %(until)s
                GROUP BY account_id, counterparty_account""",
            {"accounts": tuple(accounts), "since": since, "until": until, "ccy": currency},
        )
        return [(a, c, cents(s), int(n), first, last) for a, c, s, n, first, last in rows]

    async def monitored(self, accounts: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """account -> (institution_id, role, region) for the accounts FundWatch holds records of,
        as the records were enriched when processed."""
        if not accounts:
            return {}
        rows = await self.storage.query(
            f"""SELECT account_id, max(institution_id), max(account_role), max(region)
                FROM {D}.raw_transactions WHERE account_id IN %(accounts)s GROUP BY account_id""",
            {"accounts": tuple(accounts)},
        )
        return {a: (inst, role, region) for a, inst, role, region in rows}

    # --- overview --------------------------------------------------------------------------------

    async def alert_days(self, prefix: str, since: datetime) -> list[tuple[int, str, int]]:
        """(Beijing day number since the epoch, severity, alerts created that day)."""
        where, params = _prefix(prefix)
        rows = await self.storage.query(
            f"""SELECT intDiv(toUInt32(created_at) + {BEIJING_S}, 86400) AS day, severity, count()
                FROM {D}.alerts FINAL WHERE {where} AND created_at >= %(since)s
                GROUP BY day, severity ORDER BY day""",
            {**params, "since": since},
        )
        return [(int(day), severity, int(n)) for day, severity, n in rows]
