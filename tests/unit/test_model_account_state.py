"""models/account_state.py: the per-account fold, idempotent per message."""

from __future__ import annotations

import copy

from models.account_state import RECENT_MESSAGES, already_applied, apply, empty_state
from schemas.messages import BalanceRecord, TxnRecord


def txn(credit=True, cents=100, at=1_000_000) -> TxnRecord:
    return TxnRecord(
        record_id=f"t{at}{cents}", account_id="A", credit=credit, amount_cents=cents, booked_at=at,
        counterparty_account="C", counterparty_bank="B", channel="HVPS", currency="CNY",
        counterparty_name=None, instruction_id=None, purpose=None, product_id=None, balance_after_cents=None,
    )  # fmt: skip


def snap(balance, at, liabilities=None) -> BalanceRecord:
    return BalanceRecord(f"b{at}", "A", at, balance, liabilities, "CNY")


def test_empty_state_shape():
    state = empty_state()
    assert state["inflow_cents"] == 0 and state["outflow_cents"] == 0
    assert state["balance_cents"] is None and state["recent"] == []


def test_apply_from_none_folds_credits_and_debits_exactly():
    state = apply(None, "m1", [txn(True, 1234567), txn(True, 1), txn(False, 250)])
    assert state["inflow_cents"] == 1234568
    assert state["outflow_cents"] == 250
    assert state["n_in"] == 2
    assert state["n_out"] == 1
    assert state["recent"] == ["m1"]


def test_apply_accumulates_across_messages():
    state = apply(None, "m1", [txn(True, 100)])
    state = apply(state, "m2", [txn(False, 30), txn(True, 5)])
    assert (state["inflow_cents"], state["outflow_cents"], state["n_in"], state["n_out"]) == (105, 30, 2, 1)
    assert state["recent"] == ["m1", "m2"]


def test_first_and_last_seen_by_event_time():
    state = apply(None, "m1", [txn(at=500), txn(at=100), txn(at=300)])
    state = apply(state, "m2", [snap(0, 50), txn(at=900)])
    assert state["first_seen"] == 50
    assert state["last_seen"] == 900


def test_balance_snapshot_taken():
    state = apply(None, "m1", [snap(-500, 1000, 2000)])
    assert state["balance_cents"] == -500
    assert state["balance_at"] == 1000
    assert state["liabilities_cents"] == 2000


def test_later_message_with_older_snapshot_does_not_roll_back():
    state = apply(None, "m1", [snap(700, 2000, 800)])
    state = apply(state, "m2", [snap(100, 1000, 50)])
    assert state["balance_cents"] == 700
    assert state["balance_at"] == 2000
    assert state["liabilities_cents"] == 800


def test_newer_snapshot_replaces_older():
    state = apply(None, "m1", [snap(700, 1000, 800)])
    state = apply(state, "m2", [snap(100, 2000, None)])
    assert state["balance_cents"] == 100
    assert state["balance_at"] == 2000
    assert state["liabilities_cents"] is None


def test_snapshots_within_one_message_keep_the_latest():
    state = apply(None, "m1", [snap(3, 3000), snap(1, 1000), snap(2, 2000)])
    assert (state["balance_cents"], state["balance_at"]) == (3, 3000)


def test_same_message_twice_changes_nothing():
    records = [txn(True, 100), snap(50, 1000)]
    once = apply(None, "m1", records)
    twice = apply(once, "m1", records)
    assert twice == once
    assert twice["inflow_cents"] == 100
    assert twice["recent"] == ["m1"]


def test_already_applied():
    assert not already_applied(None, "m1")
    state = apply(None, "m1", [txn()])
    assert already_applied(state, "m1")
    assert not already_applied(state, "m2")


def test_apply_does_not_mutate_the_input_state():
    state = apply(None, "m1", [txn(True, 100)])
    before = copy.deepcopy(state)
    apply(state, "m2", [txn(True, 50), snap(1, 1)])
    assert state == before


def test_recent_is_bounded():
    state = None
    for n in range(RECENT_MESSAGES + 10):
        state = apply(state, f"m{n}", [txn(True, 1)])
    assert len(state["recent"]) == RECENT_MESSAGES
    assert state["recent"][0] == "m10"
    assert state["recent"][-1] == f"m{RECENT_MESSAGES + 9}"
    assert state["inflow_cents"] == RECENT_MESSAGES + 10


def test_message_older_than_the_window_is_applied_again():
    # the bound is a documented limit: only the last RECENT_MESSAGES ids are remembered
    state = None
    for n in range(RECENT_MESSAGES + 1):
        state = apply(state, f"m{n}", [txn(True, 1)])
    assert not already_applied(state, "m0")
    assert already_applied(state, "m1")


def test_empty_message_is_remembered():
    state = apply(None, "m1", [])
    assert state["recent"] == ["m1"]
    assert state["first_seen"] is None
