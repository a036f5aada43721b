"""The state `fund_pool` keeps per account and Beijing day, and how the account's records are
folded into it: credit and debit buckets, the investor-like payers and the borrower- or
investor-like payees (at most ``DISTINCT_CAP`` per side, the smallest account ids), and the day's
latest balance seen (models/detectors/fund_pool.py holds the rule)."""

from __future__ import annotations

from typing import Any

from models.detectors.common import add, event_time, is_expired, is_sealed, new_bucket
from models.detectors.context import DetectContext
from models.windows import DAY, beijing_day_start
from schemas.messages import BalanceRecord, TxnRecord

DISTINCT_CAP = 2000  # counterparties kept per day and side


def empty_state() -> dict[str, Any]:
    """wm: the watermark; days: per Beijing day (``_day_in``)."""
    return {"wm": None, "days": {}}


def payer_class(ctx: DetectContext, account_id: str, counterparty: str | None) -> str | None:
    """A credit's payer as the fan-in sees it: "investor", "unknown", or None (not investor-like)."""
    if not counterparty or counterparty == account_id:
        return None
    if ctx.account(counterparty) is None:
        return "unknown"
    return "investor" if ctx.role(counterparty) == "investor" else None


def payee_class(ctx: DetectContext, account_id: str, counterparty: str | None) -> str | None:
    """A debit's payee as the fan-out sees it: "borrower", "investor", "unknown", or None."""
    if not counterparty or counterparty == account_id:
        return None
    if ctx.account(counterparty) is None:
        return "unknown"
    role = ctx.role(counterparty)
    return role if role in ("borrower", "investor") else None


def _day_in(days: dict[str, Any], day: int) -> dict[str, Any]:
    entry = days.get(str(day))
    if entry is None:
        # in/out: credit and debit buckets; fin/fout: {counterparty: class}; bal: [ts, rid, cents]
        entry = days[str(day)] = {"in": new_bucket(), "out": new_bucket(), "fin": {}, "fout": {}, "bal": None}
    return entry


def _see_balance(entry: dict[str, Any], ts: int, record_id: str, cents: int) -> None:
    seen = entry["bal"]
    if seen is None or (ts, record_id) > (seen[0], seen[1]):
        entry["bal"] = [ts, record_id, cents]


def _trim(fan: dict[str, str]) -> dict[str, str]:
    if len(fan) <= DISTINCT_CAP:
        return fan
    return {cp: fan[cp] for cp in sorted(fan)[:DISTINCT_CAP]}


def fold_records(
    ctx: DetectContext, st: dict[str, Any], account_id: str, mine: list[TxnRecord | BalanceRecord]
) -> tuple[set[int], set[int]]:
    """Count the account's records into their days: the days whose figures changed, and those a
    late record changed."""
    wm = st["wm"]
    moved: set[int] = set()  # days whose figures changed
    late_days: set[int] = set()  # ... by a late record
    for record in mine:
        ts = event_time(record)
        if record.currency != "CNY":
            continue
        late = is_sealed(ts, wm)  # still counted, in the day kept for it
        day = beijing_day_start(ts)
        if isinstance(record, BalanceRecord):
            # a snapshot at midnight is the balance the day before ended with
            if ts == day:
                day -= DAY
            entry = _day_in(st["days"], day)
            moved.add(day)
            _see_balance(entry, ts, record.record_id, record.balance_cents)
            continue
        entry = _day_in(st["days"], day)
        moved.add(day)
        if late:
            late_days.add(day)
        if record.balance_after_cents is not None:
            _see_balance(entry, ts, record.record_id, record.balance_after_cents)
        counterparty = record.counterparty_account
        if record.credit:
            kind = payer_class(ctx, account_id, counterparty)
            side, fan = entry["in"], entry["fin"]
        else:
            kind = payee_class(ctx, account_id, counterparty)
            side, fan = entry["out"], entry["fout"]
        add(side, record.record_id, ts, record.amount_cents, tag=kind or "other", late=late)
        if kind:
            fan[counterparty] = kind
    for day in moved:
        entry = st["days"][str(day)]
        entry["fin"], entry["fout"] = _trim(entry["fin"]), _trim(entry["fout"])
    return moved, late_days


def prune(st: dict[str, Any], wm: int | None, window_days: int) -> None:
    """Drop the days no window that can still change holds."""
    # a day counts in the windows of the following window_days - 1 days: keep it while any is
    # kept (open, or sealed for less than LATE_KEEP)
    reach = (window_days - 1) * DAY
    days = st["days"]
    # a day expires no later than an older one: while the oldest is kept, every day is
    if days and is_expired(min(map(int, days)) + reach, wm):
        st["days"] = {k: e for k, e in days.items() if not is_expired(int(k) + reach, wm)}
