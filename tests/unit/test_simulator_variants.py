"""services/simulator/variants.py: the optional fields a variant leaves out and the order its
banks push in."""

from __future__ import annotations

import pytest

from services.simulator.variants import (
    ORDERS,
    SPARSE,
    VARIANTS,
    Fields,
    push_order,
    selected,
    strip_batch,
    strip_record,
    strip_reference,
)

ROLES = {"C": "customer_custody", "B": "borrower", "I": "investor", "O": "own_operating"}


def txn(account, counterparty, direction, **extra):
    return {
        "kind": "transaction", "record_id": f"{account}-{counterparty}-{direction}", "account_id": account,
        "direction": direction, "amount": "1.00", "currency": "CNY", "booked_at": "2026-11-02T10:00:00+08:00",
        "counterparty_account": counterparty, "counterparty_bank": "B001", "counterparty_name": "某某",
        "channel": "BEPS", "purpose": "摘要", "balance_after": "9.00", **extra,
    }  # fmt: skip


def test_sparse_takes_the_product_off_repayments_only_and_the_free_text_everywhere():
    repayment = txn("C", "B", "credit", product_id="P1")
    borrower_leg = txn("B", "C", "debit", product_id="P1")
    payout = txn("C", "I", "debit", product_id="P1", instruction_id="PO-1")
    loan = txn("C", "B", "debit", product_id="P1", instruction_id="LN-1")
    subscription = txn("C", "I", "credit", product_id="P1")
    for record in (repayment, borrower_leg):
        out = strip_record(record, ROLES, SPARSE)
        assert "product_id" not in out and "purpose" not in out and "balance_after" not in out
        assert "counterparty_name" not in out
    assert strip_record(payout, ROLES, SPARSE)["product_id"] == "P1"
    assert strip_record(payout, ROLES, SPARSE)["instruction_id"] == "PO-1"  # a debit keeps its instruction
    assert strip_record(loan, ROLES, SPARSE)["product_id"] == "P1"
    assert strip_record(subscription, ROLES, SPARSE)["product_id"] == "P1"
    credit = strip_record(txn("O", "C", "credit", instruction_id="FE-1"), ROLES, SPARSE)
    assert "instruction_id" not in credit
    untagged = VARIANTS["untagged"].fields
    assert "product_id" not in strip_record(payout, ROLES, untagged)
    assert "product_id" not in strip_record(
        txn("I", "C", "credit", product_id="P1", instruction_id="PO-1"), ROLES, untagged
    )
    assert strip_record(loan, ROLES, untagged)["product_id"] == "P1"


def test_a_complete_variant_changes_nothing_and_the_original_is_never_changed():
    record = txn("C", "B", "credit", product_id="P1")
    batch = {"batch_id": "b", "bank_code": "B001", "records": [record]}
    assert strip_batch(batch, ROLES, Fields()) is batch
    strip_batch(batch, ROLES, SPARSE)
    assert record["product_id"] == "P1" and record["purpose"] == "摘要"


def test_borrowers_lose_their_product_in_the_reference_data_only_when_asked():
    payloads = {"accounts": [{"account_id": "B", "role": "borrower", "product_id": "P1"},
                             {"account_id": "C", "role": "customer_custody", "product_id": None}]}  # fmt: skip
    assert strip_reference(payloads, SPARSE)["accounts"][0]["product_id"] == "P1"
    assert strip_reference(payloads, VARIANTS["untagged"].fields)["accounts"][0]["product_id"] is None


def _batches() -> dict[str, list[dict]]:
    """Three banks, four days, one batch an hour-ish per bank and day."""
    out: dict[str, list[dict]] = {}
    for bank in ("B001", "B002", "B003", "B004"):
        out[bank] = []
        for day in range(2, 9):
            for hour in (9, 15):
                stamp = f"2026-11-{day:02d}T{hour:02d}:00:00+08:00"
                record = {
                    "kind": "transaction",
                    "booked_at": stamp,
                    "account_id": "A",
                    "record_id": f"{bank}{day}{hour}",
                }
                out[bank].append(
                    {
                        "batch_id": f"{bank}-{day}-{hour}",
                        "bank_code": bank,
                        "records": [record] * (1 + (bank == "B003")),
                    }
                )
    return out


def _ids(order):
    return [b["batch_id"] for b in order]


@pytest.mark.parametrize("order", ORDERS)
def test_every_order_pushes_every_batch_once_and_each_bank_in_time_order_except_a_resent_day(order):
    batches = _batches()
    pushed = push_order(batches, order)
    assert sorted(_ids(pushed)) == sorted(b["batch_id"] for items in batches.values() for b in items)
    if order != "resent-day":
        for bank, items in batches.items():
            assert [b for b in _ids(pushed) if b.startswith(bank)] == _ids(items)


def test_the_orders_put_banks_where_they_say():
    batches = _batches()
    assert _ids(push_order(batches, "bank-by-bank"))[:14] == _ids(batches["B001"])
    day_end = _ids(push_order(batches, "day-end"))
    assert day_end[:8] == [
        "B001-2-9",
        "B001-2-15",
        "B002-2-9",
        "B002-2-15",
        "B003-2-9",
        "B003-2-15",
        "B004-2-9",
        "B004-2-15",
    ]
    late = _ids(push_order(batches, "late-banks"))
    # day 2: B001 and B003 at its end, B002 a day later, B004 three days later
    assert late.index("B002-2-9") > late.index("B001-3-15") and late.index("B004-2-9") > late.index(
        "B001-5-15"
    )
    realtime = _ids(push_order(batches, "realtime"))
    assert realtime[:4] == ["B001-2-9", "B002-2-9", "B003-2-9", "B004-2-9"]
    resent = _ids(push_order(batches, "resent-day"))  # B003 is the busiest: its third day comes late
    assert resent.index("B003-4-9") > resent.index("B001-7-9")


def test_variants_are_chosen_by_name_or_all():
    assert [v.name for v in selected("all")] == list(VARIANTS)
    assert [v.name for v in selected("sparse, baseline")] == ["baseline", "sparse"]
    with pytest.raises(ValueError, match="unknown variants"):
        selected("nope")


def test_only_a_payout_coverage_alone_is_undecidable_and_only_when_no_product_reaches_the_data():
    from services.simulator.variants import VARIANTS, undecidable_labels

    labels = [
        {"label_id": "a", "typology": "excess_return", "kind": "positive", "what": "payout_coverage"},
        {"label_id": "b", "typology": "excess_return", "kind": "positive", "what": "payout_coverage+peer_outlier"},
        {"label_id": "c", "typology": "excess_return", "kind": "hard_negative", "what": "payout_coverage"},
        {"label_id": "d", "typology": "fund_pool", "kind": "positive", "what": "payout_coverage"},
    ]
    assert undecidable_labels(labels, VARIANTS["untagged"].fields) == {"a"}
    for name in ("baseline", "sparse", "day-end", "bank-by-bank"):
        assert undecidable_labels(labels, VARIANTS[name].fields) == set()
