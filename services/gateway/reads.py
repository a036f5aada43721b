"""Read endpoints over ClickHouse: an account's windowed flows, and what storage holds.

Aggregate partials are summed here, at read time, over FINAL (see schemas/ddl.py): the figures
are exact whatever the broker redelivered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.ddl import DATABASE
from schemas.fields import parse_time
from services.auth import Principal
from services.gateway.errors import ApiError
from services.storage.async_storage import AsyncStorage

_COUNTED_TABLES = (
    "raw_transactions", "raw_balances", "agg_account", "agg_institution", "account_state",
    "ref_institutions", "ref_accounts", "ref_related_parties", "ref_products", "tokens",
    "batch_answers", "ingest_keys",
)  # fmt: skip


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Reads:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage

    async def _account_scope(self, account_id: str) -> tuple[str, str]:
        """(bank_code, region) of an account, from the stored reference data."""
        # two look-ups rather than a JOIN: ClickHouse 18.16 and 26.x disagree on JOIN defaults
        accounts = await self.storage.query(
            f"SELECT bank_code, institution_id FROM {DATABASE}.ref_accounts FINAL WHERE account_id = %(account)s",
            {"account": account_id},
        )
        if not accounts:
            return "", ""
        bank_code, institution_id = accounts[0]
        regions = await self.storage.query(
            f"SELECT region FROM {DATABASE}.ref_institutions FINAL WHERE institution_id = %(inst)s",
            {"inst": institution_id},
        )
        return bank_code, regions[0][0] if regions else ""

    async def account_flows(
        self, principal: Principal, account_id: str, grain: str, since: str | None, limit: int
    ) -> dict[str, Any]:
        if grain not in {"hour", "day"}:
            raise ApiError(422, "invalid_query", "`grain`: must be hour or day", "grain")
        try:
            since_at = parse_time(since) if since else datetime(1970, 1, 1, tzinfo=UTC)
        except ValueError:
            raise ApiError(
                422, "invalid_query", "`since`: must be an RFC 3339 time with an offset", "since"
            ) from None
        if principal.role != "admin":
            bank_code, region = await self._account_scope(account_id)
            allowed = (principal.role == "bank" and bank_code == principal.bank_code) or (
                principal.role == "desk" and region != "" and region.startswith(principal.region)
            )
            if not allowed:
                # the same answer as for an unknown account: a caller learns nothing outside its scope
                raise ApiError(404, "not_found", f"no account {account_id!r} in your scope")
        rows = await self.storage.query(
            f"""SELECT window_start, sum(inflow), sum(outflow), sum(n_in), sum(n_out),
                       length(groupUniqArrayArray(counterparties)), max(institution_id)
                FROM {DATABASE}.agg_account FINAL
                WHERE account_id = %(account)s AND grain = %(grain)s AND window_start >= %(since)s
                GROUP BY window_start ORDER BY window_start DESC LIMIT %(limit)s""",
            {"account": account_id, "grain": grain, "since": since_at, "limit": limit},
        )
        totals = await self.storage.query(
            f"""SELECT sum(inflow), sum(outflow), sum(n_in), sum(n_out), length(groupUniqArrayArray(counterparties))
                FROM {DATABASE}.agg_account FINAL
                WHERE account_id = %(account)s AND grain = 'day' AND window_start >= %(since)s""",
            {"account": account_id, "since": since_at},
        )
        inflow, outflow, n_in, n_out, counterparties = (
            totals[0] if totals else (Decimal(0), Decimal(0), 0, 0, 0)
        )
        return {
            "account_id": account_id,
            "grain": grain,
            "totals": {
                "inflow": _money(inflow or Decimal(0)),
                "outflow": _money(outflow or Decimal(0)),
                "credits": int(n_in or 0),
                "debits": int(n_out or 0),
                "distinct_counterparties": int(counterparties or 0),
            },
            "windows": [
                {
                    "window_start": _iso(start),
                    "inflow": _money(win_in),
                    "outflow": _money(win_out),
                    "credits": int(c_in),
                    "debits": int(c_out),
                    "distinct_counterparties": int(distinct),
                    "institution_id": institution or None,
                }
                for start, win_in, win_out, c_in, c_out, distinct, institution in rows
            ],
        }

    async def storage_summary(self) -> dict[str, Any]:
        counts = {}
        for table in _COUNTED_TABLES:
            counts[table] = int(
                (await self.storage.query(f"SELECT count() FROM {DATABASE}.{table} FINAL"))[0][0]
            )
        latest = await self.storage.query(
            f"SELECT max(booked_at), sum(amount) FROM {DATABASE}.raw_transactions FINAL"
        )
        newest, total = latest[0] if latest else (None, None)
        return {
            "database": DATABASE,
            "rows": counts,
            "transactions_total_amount": _money(total or Decimal(0)),
            "latest_booked_at": _iso(newest) if newest and newest.timestamp() > 0 else None,
        }
