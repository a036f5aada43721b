"""models/institution_detection.py: which records the institution level sees, and one step."""

from __future__ import annotations

import msgspec

from models.detectors.context import DetectContext, OverlaidReferences
from models.institution_detection import INSTITUTION_DETECTORS, institution_records, step_institution
from tests.unit.test_detectors_common import (
    BORROWER,
    CUSTODY,
    INVESTOR,
    OWN,
    PRODUCTS,
    RELATED,
    RESERVE,
    TEST_THRESHOLDS,
    references,
    snap,
    txn,
    world,
)

SPLIT = {**PRODUCTS[0], "product_id": "PRD-P1-SPLIT", "term_days": 30, "underlying_term_days": 360}


def test_every_institution_level_typology_has_a_detector():
    assert set(INSTITUTION_DETECTORS) == {
        "excess_return", "maturity_mismatch", "investor_cap_breach", "rapid_growth", "disguised_clearing",
    }  # fmt: skip
    for module in INSTITUTION_DETECTORS.values():
        assert module.SCOPE == "institution" and module.VERSION


def test_only_custody_reserve_and_own_accounts_are_seen_per_institution():
    records = [
        txn(CUSTODY, True, "100.00", "2026-11-25 10:00:00", INVESTOR),
        txn(OWN, False, "50.00", "2026-11-25 10:00:00", RELATED),
        txn(RESERVE, True, "10.00", "2026-11-25 10:00:00"),
        txn(RELATED, True, "50.00", "2026-11-25 10:00:00", OWN),  # a related party's own account
        txn(INVESTOR, False, "100.00", "2026-11-25 10:00:00", CUSTODY),  # the investor's side
        txn(BORROWER, True, "1.00", "2026-11-25 10:00:00"),
        txn("6217999999999999", True, "1.00", "2026-11-25 10:00:00"),  # unknown
        snap(CUSTODY, "2026-11-25 10:00:00", "100.00", "100.00"),
    ]
    parts = institution_records(world(), records)
    assert {k: [r.account_id for r in v] for k, v in parts.items()} == {
        "P1": [CUSTODY, OWN],
        "PAY": [RESERVE],
    }


def test_a_review_flags_a_split_product_and_a_redelivered_message_changes_nothing():
    ctx = DetectContext(OverlaidReferences(references(), [SPLIT]), TEST_THRESHOLDS)
    state, changed = step_institution(ctx, None, "P1", "review/1", [], at=1_764_000_000)
    assert [(kind, alert.typology) for kind, alert in changed] == [("created", "maturity_mismatch")]
    assert msgspec.json.decode(msgspec.json.encode(state)) == state  # plain JSON
    again, changed_again = step_institution(ctx, state, "P1", "review/1", [], at=1_764_000_100)
    assert again is state and changed_again == []
    # a new review of the same products: the alert's figures are the same, nothing to emit
    _, changed_later = step_institution(ctx, state, "P1", "review/2", [], at=1_764_000_200)
    assert changed_later == []
