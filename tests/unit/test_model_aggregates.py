"""models/aggregates.py: windowed flow partials."""

from __future__ import annotations

from models.aggregates import FlowPartial, flow_partials
from schemas.fields import epoch_seconds
from schemas.messages import TxnRecord


def txn(
    account="A", credit=True, cents=100, at="2026-11-25T09:30:00+08:00", cp="C1", product=None, currency="CNY"
) -> TxnRecord:
    return TxnRecord(
        record_id=f"r-{account}-{at}-{cents}-{cp}",
        account_id=account,
        credit=credit,
        amount_cents=cents,
        booked_at=epoch_seconds(at),
        counterparty_account=cp,
        counterparty_bank="B002",
        channel="BEPS",
        currency=currency,
        counterparty_name=None,
        instruction_id=None,
        purpose=None,
        product_id=product,
        balance_after_cents=None,
    )


def by_account(t: TxnRecord) -> str:
    return t.account_id


HOUR_9 = epoch_seconds("2026-11-25T09:00:00+08:00")
DAY_25 = epoch_seconds("2026-11-25T00:00:00+08:00")
DAY_24 = epoch_seconds("2026-11-24T00:00:00+08:00")


def test_empty_input_gives_no_partials():
    assert flow_partials([], by_account) == {}


def test_one_record_gives_an_hour_and_a_day_partial():
    partials = flow_partials([txn(cents=1234567)], by_account)
    assert set(partials) == {("A", "hour", HOUR_9, "CNY"), ("A", "day", DAY_25, "CNY")}
    for partial in partials.values():
        assert partial.inflow_cents == 1234567
        assert partial.outflow_cents == 0
        assert (partial.n_in, partial.n_out) == (1, 0)
        assert partial.counterparties == {"C1"}


def test_inflow_outflow_and_counts():
    records = [
        txn(credit=True, cents=100, cp="C1"),
        txn(credit=True, cents=250, cp="C2"),
        txn(credit=False, cents=70, cp="C3"),
    ]
    day = flow_partials(records, by_account)[("A", "day", DAY_25, "CNY")]
    assert day.inflow_cents == 350
    assert day.outflow_cents == 70
    assert day.n_in == 2
    assert day.n_out == 1


def test_counterparties_are_distinct():
    records = [txn(cp="C1"), txn(cp="C1", credit=False), txn(cp="C2")]
    day = flow_partials(records, by_account)[("A", "day", DAY_25, "CNY")]
    assert day.counterparties == {"C1", "C2"}
    assert day.n_in + day.n_out == 3


def test_hours_split_within_one_day():
    records = [txn(at="2026-11-25T09:59:59+08:00", cents=1), txn(at="2026-11-25T10:00:00+08:00", cents=2)]
    partials = flow_partials(records, by_account)
    assert partials[("A", "hour", HOUR_9, "CNY")].inflow_cents == 1
    assert partials[("A", "hour", HOUR_9 + 3600, "CNY")].inflow_cents == 2
    assert partials[("A", "day", DAY_25, "CNY")].inflow_cents == 3


def test_beijing_midnight_splits_day_windows():
    before = txn(at="2026-11-24T23:59:59+08:00", cents=10)
    after = txn(at="2026-11-25T00:00:00+08:00", cents=20)
    partials = flow_partials([before, after], by_account)
    assert partials[("A", "day", DAY_24, "CNY")].inflow_cents == 10
    assert partials[("A", "day", DAY_25, "CNY")].inflow_cents == 20
    assert len([k for k in partials if k[1] == "day"]) == 2


def test_utc_15_59_59_and_16_00_00_fall_in_different_beijing_days():
    before = txn(at="2026-11-24T15:59:59Z", cents=10)
    after = txn(at="2026-11-24T16:00:00Z", cents=20)
    partials = flow_partials([before, after], by_account)
    assert partials[("A", "day", DAY_24, "CNY")].inflow_cents == 10
    assert partials[("A", "day", DAY_25, "CNY")].inflow_cents == 20


def test_same_utc_day_can_be_two_beijing_days():
    morning = txn(at="2026-11-24T01:00:00Z", cents=1)
    evening = txn(at="2026-11-24T20:00:00Z", cents=2)
    days = {k[2] for k in flow_partials([morning, evening], by_account) if k[1] == "day"}
    assert days == {DAY_24, DAY_25}


def test_keys_kept_apart():
    partials = flow_partials([txn(account="A", cents=1), txn(account="B", cents=2)], by_account)
    assert partials[("A", "day", DAY_25, "CNY")].inflow_cents == 1
    assert partials[("B", "day", DAY_25, "CNY")].inflow_cents == 2
    assert len(partials) == 4


def test_records_whose_key_is_none_are_skipped():
    records = [txn(product="P-1", cents=5), txn(product=None, cents=7)]
    partials = flow_partials(records, lambda t: t.product_id)
    assert set(partials) == {("P-1", "hour", HOUR_9, "CNY"), ("P-1", "day", DAY_25, "CNY")}
    assert partials[("P-1", "day", DAY_25, "CNY")].inflow_cents == 5


def test_all_keys_none_gives_nothing():
    assert flow_partials([txn(), txn()], lambda t: None) == {}


def test_partial_add():
    partial = FlowPartial()
    partial.add(txn(credit=False, cents=99, cp="X"))
    assert (partial.inflow_cents, partial.outflow_cents, partial.n_in, partial.n_out) == (0, 99, 0, 1)
    assert partial.counterparties == {"X"}


def test_partials_do_not_share_counterparty_sets():
    assert FlowPartial().counterparties is not FlowPartial().counterparties


def test_sums_are_exact_integers():
    records = [txn(cents=1) for _ in range(1000)] + [txn(cents=999999999999999999)]
    day = flow_partials(records, by_account)[("A", "day", DAY_25, "CNY")]
    assert day.inflow_cents == 1000 + 999999999999999999
    assert day.n_in == 1001


def test_currencies_are_never_added_together():
    records = [
        txn(cents=1_000_00, cp="C1"),
        txn(cents=10_00, cp="C2", currency="USD"),
        txn(cents=5, currency="USD"),
    ]
    partials = flow_partials(records, by_account)
    assert set(partials) == {
        ("A", grain, start, ccy)
        for grain, start in (("hour", HOUR_9), ("day", DAY_25))
        for ccy in ("CNY", "USD")
    }
    cny, usd = partials[("A", "day", DAY_25, "CNY")], partials[("A", "day", DAY_25, "USD")]
    assert (cny.inflow_cents, cny.n_in, cny.counterparties) == (1_000_00, 1, {"C1"})
    assert (usd.inflow_cents, usd.n_in, usd.counterparties) == (10_05, 2, {"C1", "C2"})
