"""Read endpoints over ClickHouse: an account's windowed flows, and what storage holds.

Aggregate partials are summed here, at read time, over FINAL (see schemas/ddl.py): the figures
are exact whatever the broker redelivered. Every figure is per currency (CONTRACT.md §3).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.ddl import DATABASE
from schemas.fields import TIME_RULE, query_time
from services.auth import Principal
from services.gateway.errors import ApiError
from services.storage.async_storage import AsyncStorage

_COUNTED_TABLES = (
    "raw_transactions", "raw_balances", "agg_account_ccy", "agg_institution_ccy", "account_state",
    "ref_institutions", "ref_accounts", "ref_related_parties", "ref_products", "tokens",
    "batch_answers", "ingest_keys",
)  # fmt: skip


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _figures(inflow: Decimal, outflow: Decimal, n_in: int, n_out: int, distinct: int) -> dict[str, Any]:
    return {
        "inflow": _money(inflow or Decimal(0)),
        "outflow": _money(outflow or Decimal(0)),
        "credits": int(n_in or 0),
        "debits": int(n_out or 0),
        "distinct_counterparties": int(distinct or 0),
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def account_scope(storage: AsyncStorage, account_id: str) -> tuple[str, str]:
    """(bank_code, region) of a registered account from the stored reference data; ("", "") for
    one not registered."""
    # two look-ups rather than a JOIN: ClickHouse 18.16 and 26.x disagree on JOIN defaults
    accounts = await storage.query(
        f"SELECT bank_code, institution_id FROM {DATABASE}.ref_accounts FINAL WHERE account_id = %(account)s",
        {"account": account_id},
    )
    if not accounts:
        return "", ""
    bank_code, institution_id = accounts[0]
    regions = await storage.query(
        f"SELECT region FROM {DATABASE}.ref_institutions FINAL WHERE institution_id = %(inst)s",
        {"inst": institution_id},
    )
    return bank_code, regions[0][0] if regions else ""


class Reads:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage

    async def _account_scope(self, account_id: str) -> tuple[str, str]:
        return await account_scope(self.storage, account_id)

    async def account_flows(
        self, principal: Principal, account_id: str, grain: str, since: str | None, limit: int
    ) -> dict[str, Any]:
        if grain not in {"hour", "day"}:
            raise ApiError(422, "invalid_query", "`grain`: must be hour or day", "grain")
        try:
            since_at = query_time(since) if since else datetime(1970, 1, 1, tzinfo=UTC)
        except ValueError:
            raise ApiError(422, "invalid_query", f"`since`: must be {TIME_RULE}", "since") from None
        if principal.role != "admin":
            bank_code, region = await self._account_scope(account_id)
            allowed = (principal.role == "bank" and bank_code == principal.bank_code) or (
                principal.role == "desk" and region != "" and region.startswith(principal.region)
            )
            if not allowed:
                # the same answer as for an unknown account: a caller learns nothing outside its scope
                raise ApiError(404, "not_found", f"no account {account_id!r} in your scope")
        params = {"account": account_id, "grain": grain, "since": since_at, "limit": limit}
        # One row per (window, currency): figures in different currencies are never added together
        # (CONTRACT.md §3). ``limit`` counts windows, so a window's currencies are never cut apart.
        rows = await self.storage.query(
            f"""SELECT window_start, currency, sum(inflow), sum(outflow), sum(n_in), sum(n_out),
                       length(groupUniqArrayArray(counterparties)), max(institution_id)
                FROM {DATABASE}.agg_account_ccy FINAL
                WHERE account_id = %(account)s AND grain = %(grain)s AND window_start >= %(since)s
                  AND window_start IN (
                      SELECT DISTINCT window_start FROM {DATABASE}.agg_account_ccy
                      WHERE account_id = %(account)s AND grain = %(grain)s AND window_start >= %(since)s
                      ORDER BY window_start DESC LIMIT %(limit)s)
                GROUP BY window_start, currency ORDER BY window_start DESC, currency""",
            params,
        )
        totals = await self.storage.query(
            f"""SELECT currency, sum(inflow), sum(outflow), sum(n_in), sum(n_out),
                       length(groupUniqArrayArray(counterparties))
                FROM {DATABASE}.agg_account_ccy FINAL
                WHERE account_id = %(account)s AND grain = 'day' AND window_start >= %(since)s
                GROUP BY currency ORDER BY currency""",
            params,
        )
        if not totals and not await self._known(account_id):
            # an admin, too, learns that an account is neither registered nor has any record,
            # rather than reading zeros as if its flows were known to be none
            raise ApiError(404, "not_found", f"no account {account_id!r}")
        return {
            "account_id": account_id,
            "grain": grain,
            # by currency, e.g. {"CNY": {...}, "USD": {...}}; empty when nothing flowed since then
            "totals": {
                currency: _figures(inflow, outflow, n_in, n_out, distinct)
                for currency, inflow, outflow, n_in, n_out, distinct in totals
            },
            "windows": [
                {
                    "window_start": _iso(start),
                    "currency": currency,
                    **_figures(win_in, win_out, c_in, c_out, distinct),
                    "institution_id": institution or None,
                }
                for start, currency, win_in, win_out, c_in, c_out, distinct, institution in rows
            ],
        }

    async def _known(self, account_id: str) -> bool:
        """Whether an account is in the reference data or has any record stored (a record of an
        account missing from the reference data is accepted, with a warning)."""
        for table in ("ref_accounts", "raw_transactions", "raw_balances"):
            # each table's sorting key starts with account_id: a look-up, not a scan
            found = await self.storage.query(
                f"SELECT 1 FROM {DATABASE}.{table} WHERE account_id = %(account)s LIMIT 1",
                {"account": account_id},
            )
            if found:
                return True
        return False

    async def storage_summary(self) -> dict[str, Any]:
        counts = {}
        for table in _COUNTED_TABLES:
            counts[table] = int(
                (await self.storage.query(f"SELECT count() FROM {DATABASE}.{table} FINAL"))[0][0]
            )
        # batch answers and record keys are one row per batch since migration 9; the counts keep
        # their meaning, the rows written before it included
        answers, keys = (await self.storage.query(
            f"SELECT count(), sum(length(record_ids)) FROM {DATABASE}.batches FINAL"
        ))[0]  # fmt: skip
        counts["batch_answers"] += int(answers or 0)
        counts["ingest_keys"] += int(keys or 0)
        latest = await self.storage.query(f"SELECT max(booked_at) FROM {DATABASE}.raw_transactions FINAL")
        newest = latest[0][0] if latest else None
        # by currency, e.g. {"CNY": "12345.67"}: amounts in different currencies are not added up
        by_currency = await self.storage.query(
            f"""SELECT currency, sum(amount) FROM {DATABASE}.raw_transactions FINAL
                GROUP BY currency ORDER BY currency"""
        )
        return {
            "database": DATABASE,
            "rows": counts,
            "transactions_total_amount": {currency: _money(total) for currency, total in by_currency},
            "latest_booked_at": _iso(newest) if newest and newest.timestamp() > 0 else None,
        }
