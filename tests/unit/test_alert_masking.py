"""schemas/alerts.py: what leaves FundWatch has account numbers cut to ``****`` and the last 4
characters wherever they sit in the alert, and nothing else changed (DOMAIN.md, Personal data)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from schemas.alerts import (
    AlertData,
    DetectorInfo,
    Evidence,
    Explanation,
    decode_event,
    encode_event,
    mask_alert,
    to_event,
)

OWN = "6222000011112222"  # the alert's accounts
OTHER = "6222000099990000"
PAYER = "6230111122223333"  # counterparties: not among the alert's accounts
PAYEE = "6230111122224444"
FULL_NUMBERS = (OWN, OTHER, PAYER, PAYEE)


def alert(metrics: dict[str, Any] | None = None, **changes: Any) -> AlertData:
    base = AlertData(
        alert_id="a-7",
        typology="disguised_clearing",
        severity="high",
        score=0.8,
        institution_id="PAY-01",
        region="220102",
        accounts=[OWN, OTHER],
        amount="250000.00",
        window_start="2026-11-20T00:00:00Z",
        window_end="2026-11-21T00:00:00Z",
        evidence=Evidence(
            record_ids=["r-1", "r-2"],
            metrics={"total": "250000.00"} if metrics is None else metrics,
            thresholds={"min_customers": 20, "config_version": "2026.11.1"},
        ),
        explanation=Explanation(zh="备付金账户****2222……", en="The reserve account ****2222 ..."),
        detector=DetectorInfo(name="disguised_clearing", version="1"),
        rule="二(三)",
        created_at="2026-11-21T01:00:00Z",
        updated_at="2026-11-21T02:00:00Z",
        revision=2,
    )
    return msgspec.structs.replace(base, **changes)


def masked_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return mask_alert(alert(metrics)).evidence.metrics


# --- account numbers -----------------------------------------------------------------------


def test_the_alerts_accounts_are_cut_to_the_last_four():
    assert mask_alert(alert()).accounts == ["****2222", "****0000"]
    assert mask_alert(alert(accounts=["1234", "12345", ""])).accounts == ["****", "****2345", "****"]


def test_the_alerts_accounts_are_masked_as_metrics_values_under_any_key():
    shown = masked_metrics(
        {
            "main": OWN,
            "pair": [OWN, OTHER],
            "nested": {"deep": [{"who": OTHER}]},
        }
    )
    assert shown == {
        "main": "****2222",
        "pair": ["****2222", "****0000"],
        "nested": {"deep": [{"who": "****0000"}]},
    }


def test_the_alerts_accounts_are_masked_as_metrics_keys_under_any_key():
    shown = masked_metrics({"per": {OWN: "10.00", OTHER: {"n": 2, "total": "5.00"}}})
    assert shown == {"per": {"****2222": "10.00", "****0000": {"n": 2, "total": "5.00"}}}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("accounts", [PAYER, PAYEE], ["****3333", "****4444"]),
        ("top_accounts", [PAYER, PAYEE], ["****3333", "****4444"]),
        ("debit_counterparties", [PAYER], ["****3333"]),
        ("account", PAYER, "****3333"),
        ("account_id", PAYER, "****3333"),
        ("counterparty", PAYER, "****3333"),
        ("counterparty_account", PAYER, "****3333"),
        ("largest_account", PAYER, "****3333"),
        ("payer_account_id", PAYER, "****3333"),
        ("by_account", {PAYER: "10.00", PAYEE: "20.00"}, {"****3333": "10.00", "****4444": "20.00"}),
        ("inflow_by_account", {PAYER: "10.00"}, {"****3333": "10.00"}),
        ("credit_accounts", {PAYER: "10.00"}, {"****3333": "10.00"}),
        ("by_account", {PAYER: {"in": "1.00", "n": 3}}, {"****3333": {"in": "1.00", "n": 3}}),
    ],
)
def test_any_number_under_a_key_that_names_accounts_is_masked(key, value, expected):
    assert masked_metrics({key: value}) == {key: expected}


def test_counterparty_numbers_listed_under_counterparties_are_masked():
    assert masked_metrics({"counterparties": [PAYER, PAYEE]}) == {"counterparties": ["****3333", "****4444"]}


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        (
            [{"account": PAYER, "amount": "10.00", "count": 2}],
            [{"account": "****3333", "amount": "10.00", "count": 2}],
        ),
        ([[PAYER, "10.00"], [PAYEE, "20.00"]], [["****3333", "10.00"], ["****4444", "20.00"]]),
    ],
)
def test_records_listed_under_a_key_that_names_accounts_keep_their_other_fields(listed, expected):
    assert masked_metrics({"top_accounts": listed}) == {"top_accounts": expected}


# --- what is not an account number ---------------------------------------------------------


def test_values_that_are_not_account_numbers_are_untouched():
    metrics = {
        "day": "2026-11-20",
        "total": "250000.00",
        "count": 42,
        "customers": 31,
        "customers_capped": False,
        "pass_through": "0.98500000",
        "gap_ratio": None,
        "signals": ["term_split", "rollover"],
        "typology": "fund_pool",
        "account_role": "reserve",
        "counterparty_role": "related_party",
        "credit_banks": {"B001": "100.00", "B002": "150.00"},
        "history": [{"day": "2026-11-19", "inflow": "10.00", "new_investors": 3}],
    }
    assert masked_metrics(copy.deepcopy(metrics)) == metrics


def test_the_rest_of_the_alert_is_untouched():
    original = alert({"main": OWN})
    masked = mask_alert(original)
    assert msgspec.structs.replace(masked, accounts=original.accounts, evidence=original.evidence) == original
    assert masked.evidence.record_ids == original.evidence.record_ids
    assert masked.evidence.thresholds == original.evidence.thresholds


def test_masking_leaves_the_original_alert_as_it_was():
    metrics = {
        "main": OWN,
        "by_account": {PAYER: "10.00"},
        "top_accounts": [PAYER],
        "nested": {"deep": [OTHER]},
    }
    original = alert(copy.deepcopy(metrics))
    kept = copy.deepcopy(original)
    mask_alert(original)
    to_event(original, masked=True)
    assert original == kept
    assert original.accounts == [OWN, OTHER]
    assert original.evidence.metrics == metrics


# --- events --------------------------------------------------------------------------------

EVERYWHERE = {
    "main": OWN,
    "per": {OTHER: "5.00"},
    "by_account": {PAYER: "10.00"},
    "top_accounts": [PAYER, PAYEE],
    "counterparty_account": PAYEE,
    "total": "250000.00",
}


def test_an_unmasked_event_carries_the_alert_as_it_is():
    original = alert(copy.deepcopy(EVERYWHERE))
    event = to_event(original, masked=False)
    assert event.data == original
    body = encode_event(event)
    for number in FULL_NUMBERS:
        assert number.encode() in body


def test_a_masked_event_has_no_full_account_number_in_its_bytes():
    original = alert(copy.deepcopy(EVERYWHERE))
    body = encode_event(to_event(original, masked=True))
    for number in FULL_NUMBERS:
        assert number.encode() not in body
    data = decode_event(body).data
    assert data.accounts == ["****2222", "****0000"]
    assert data.evidence.metrics == {
        "main": "****2222",
        "per": {"****0000": "5.00"},
        "by_account": {"****3333": "10.00"},
        "top_accounts": ["****3333", "****4444"],
        "counterparty_account": "****4444",
        "total": "250000.00",
    }


def test_masked_and_unmasked_events_share_the_envelope():
    original = alert(copy.deepcopy(EVERYWHERE))
    outside, inside = to_event(original, masked=True), to_event(original, masked=False)
    envelope = ("id", "source", "type", "subject", "time", "specversion", "datacontenttype")
    assert [getattr(outside, f) for f in envelope] == [getattr(inside, f) for f in envelope]
    assert (outside.id, outside.type, outside.subject, outside.time) == (
        "a-7",
        "fundwatch.alert.disguised_clearing",
        "PAY-01",
        "2026-11-21T02:00:00Z",
    )
