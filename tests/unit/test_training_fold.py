"""Training from records held in memory (services/training.collect_from_records, what
`fundwatch eval --anomaly` fits on) folds exactly as the read from ClickHouse does: CNY
transactions of the period only, per account in time order, grouped by role."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from models.features import closed_day_features
from schemas.fields import BEIJING
from schemas.messages import TxnRecord
from services.training import collect_from_records, training_period

FIRST = date(2026, 11, 10)


def at(day: date, hour: int) -> int:
    return int(datetime.combine(day, time(hour), BEIJING).timestamp())


def txn(n: int, account: str, ts: int, currency: str = "CNY") -> TxnRecord:
    # optional fields absent, as a bank that sends none of them would: never evidence
    return TxnRecord(f"r{n}", account, n % 2 == 0, 10_000 + n, ts, f"62170001{n % 5:08d}", "ICBC", "IBPS",
                     currency, None, None, None, None, None)  # fmt: skip


def test_in_memory_records_fold_as_the_store_would_give_them():
    rng = random.Random(3)
    records = [txn(n, rng.choice(("A", "B", "C")), at(FIRST + timedelta(days=rng.randrange(-3, 6)),
                                                        rng.randrange(24)))
               for n in range(300)]  # fmt: skip
    records.append(txn(999, "A", at(FIRST + timedelta(days=2), 9), currency="USD"))  # never added to CNY
    period = training_period(FIRST, FIRST + timedelta(days=4))
    shuffled = list(records)
    rng.shuffle(shuffled)
    collected = collect_from_records(shuffled, {"A": "investor", "B": "investor"}, period)
    assert set(collected.roles) == {"investor"}
    rows = collected.roles["investor"]
    assert rows.accounts == 2
    expected = []
    for account in ("A", "B"):
        mine = sorted((r for r in records if r.account_id == account and r.currency == "CNY"
                       and r.booked_at < period.end_day), key=lambda r: (r.booked_at, r.record_id))  # fmt: skip
        expected += closed_day_features(mine, period.first_day, period.end_day)
    assert rows.vectors == expected and len(expected) == 8  # four judged days each
    assert collected.figures.unregistered_accounts == 1  # C has no role
    assert collected.figures.records == sum(
        1 for r in records if r.currency == "CNY" and period.history_from <= r.booked_at < period.end_day
    )
