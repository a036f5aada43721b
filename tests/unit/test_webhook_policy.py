"""The dispatcher's rules: filters, message ids, what an answer means, when to retry, which keys
sign, and what leaves FundWatch masked."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec
import pytest

from schemas.alerts import (
    AlertData,
    DetectorInfo,
    Evidence,
    Explanation,
    decode_event,
    encode_event,
    to_event,
)
from services.webhooks.policy import (
    DELIVERED,
    GONE,
    RETRY,
    RetryPolicy,
    judge,
    matches,
    parse_retry_after,
    signing_keys,
    webhook_id,
)


def alert(**changes) -> AlertData:
    base = AlertData(
        alert_id="a-1",
        typology="fund_pool",
        severity="high",
        score=0.7,
        institution_id="I1",
        region="220102",
        accounts=["6222000011112222", "6222000099990000"],
        amount="1000.00",
        window_start="2026-11-20T00:00:00Z",
        window_end="2026-11-21T00:00:00Z",
        evidence=Evidence(record_ids=["r1"], metrics={"total": "1000.00"}, thresholds={}),
        explanation=Explanation(zh="资金池", en="fund pool"),
        detector=DetectorInfo(name="fund_pool", version="1"),
        revision=3,
    )
    return msgspec.structs.replace(base, **changes)


# --- filters --------------------------------------------------------------------------------


def test_an_empty_filter_takes_every_alert():
    assert matches({}, alert())
    assert matches({"typologies": [], "min_severity": "low"}, alert(severity="low"))


@pytest.mark.parametrize(
    ("least", "severity", "taken"),
    [
        ("high", "medium", False),
        ("high", "high", True),
        ("high", "critical", True),
        ("critical", "high", False),
        ("low", "low", True),
    ],
)
def test_minimum_severity_is_inclusive(least, severity, taken):
    assert matches({"min_severity": least}, alert(severity=severity)) is taken


def test_typologies_restrict_to_those_listed():
    assert matches({"typologies": ["fund_pool", "misappropriation"]}, alert())
    assert not matches({"typologies": ["misappropriation"]}, alert())


def test_region_is_a_prefix_of_the_institutions_region():
    assert matches({"region": "22"}, alert())
    assert matches({"region": "220102"}, alert())
    assert not matches({"region": "2202"}, alert())
    assert not matches({"region": "11"}, alert())


def test_an_alert_without_region_reaches_only_subscriptions_without_one():
    assert not matches({"region": "22"}, alert(region=""))
    assert matches({}, alert(region=""))


def test_all_criteria_must_hold():
    wanted = {"typologies": ["fund_pool"], "min_severity": "high", "region": "22"}
    assert matches(wanted, alert())
    assert not matches(wanted, alert(severity="medium"))
    assert not matches(wanted, alert(region="110101"))
    assert not matches(wanted, alert(typology="commingling"))


# --- message ids ----------------------------------------------------------------------------


def test_webhook_id_is_stable_and_distinct_per_subscription_and_revision():
    one = webhook_id("s1", "a-1", 3)
    assert one == webhook_id("s1", "a-1", 3)
    assert one.startswith("msg_") and len(one) == 36
    assert len({one, webhook_id("s2", "a-1", 3), webhook_id("s1", "a-1", 4), webhook_id("s1", "a-2", 3)}) == 4


# --- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "failure", "outcome", "reason"),
    [
        (200, None, DELIVERED, None),
        (204, None, DELIVERED, None),
        (299, None, DELIVERED, None),
        (410, None, GONE, "status_4xx"),
        (429, None, RETRY, "status_429"),
        (503, None, RETRY, "status_5xx"),
        (500, None, RETRY, "status_5xx"),
        (404, None, RETRY, "status_4xx"),
        (400, None, RETRY, "status_4xx"),
        (301, None, RETRY, "status_3xx"),
        (307, None, RETRY, "status_3xx"),
        (None, "timeout", RETRY, "timeout"),
        (None, "refused_url", RETRY, "refused_url"),
        (None, None, RETRY, "connection"),
    ],
)
def test_judge_each_kind_of_answer(status, failure, outcome, reason):
    assert judge(status, failure) == (outcome, reason)


def test_retry_after_in_seconds_and_as_a_date():
    now = datetime(2026, 11, 25, 8, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(" 0 ", now) == 0.0
    later = (datetime(2026, 11, 25, 8, 2, tzinfo=UTC)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now) == pytest.approx(120.0)
    earlier = (datetime(2026, 11, 25, 7, 0, tzinfo=UTC)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(earlier, now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Tue, 99 Foo 2026"])
def test_unusable_retry_after_is_ignored(value):
    assert parse_retry_after(value, 0.0) is None


# --- schedule -------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_within_the_jitter_and_is_capped():
    policy = RetryPolicy(base_s=5.0, cap_s=3600.0, jitter=0.2)
    rng = random.Random(1)
    for failures, plain in [
        (1, 5.0),
        (2, 10.0),
        (3, 20.0),
        (4, 40.0),
        (10, 2560.0),
        (11, 3600.0),
        (30, 3600.0),
    ]:
        for _ in range(50):
            assert plain * 0.8 <= policy.backoff(failures, rng) <= plain * 1.2


def test_jitter_spreads_retries():
    policy = RetryPolicy(base_s=5.0)
    rng = random.Random(2)
    assert len({round(policy.backoff(3, rng), 6) for _ in range(20)}) == 20


def test_retries_last_the_whole_window_and_the_last_falls_at_its_end():
    policy = RetryPolicy(base_s=5.0, window_s=86400.0)
    rng = random.Random(3)
    created = 1_000_000.0
    now, failures, times = created, 0, []
    while True:
        failures += 1
        due = policy.next_attempt(created, failures, now, rng)
        if due is None:
            break
        times.append(due)
        now = due
    assert times[-1] == created + 86400.0  # at least 24 h of retries
    assert times[0] - created == pytest.approx(5.0, rel=0.2)
    assert 20 <= len(times) <= 50  # backoff, not a flood: a dead subscriber costs a few dozen tries
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


def test_retry_after_replaces_the_backoff_but_not_the_window():
    policy = RetryPolicy(base_s=5.0, window_s=100.0)
    rng = random.Random(4)
    assert policy.next_attempt(0.0, 1, 10.0, rng, retry_after=30.0) == 40.0
    assert policy.next_attempt(0.0, 1, 10.0, rng, retry_after=0.0) == 10.0
    assert policy.next_attempt(0.0, 1, 10.0, rng, retry_after=500.0) == 100.0
    assert policy.next_attempt(0.0, 9, 100.0, rng, retry_after=1.0) is None


# --- keys -----------------------------------------------------------------------------------


def test_signing_keys_include_the_previous_one_only_during_the_overlap():
    doc = {"secret": "whsec_new", "previous_secret": "whsec_old", "previous_expires": 1000.0}
    assert signing_keys(doc, 999.0) == ["whsec_new", "whsec_old"]
    assert signing_keys(doc, 1000.0) == ["whsec_new"]
    assert signing_keys({"secret": "whsec_only"}, 0.0) == ["whsec_only"]


# --- masking --------------------------------------------------------------------------------


def test_outbound_events_mask_accounts_everywhere_in_the_evidence():
    metrics = {
        "credit_accounts": {"6222000011112222": "10.00"},
        "inflow_by_account": {"6222000099990000": "5.00"},
        "counterparty_account": "6230111122223333",
        "largest_account": "6222000011112222",
        "nested": [{"x": "6222000099990000"}],
        "account_role": "customer_custody",
        "count": 3,
        "day": "2026-11-20",
    }
    original = alert(evidence=Evidence(record_ids=["r1"], metrics=metrics, thresholds={"line": "50000.00"}))
    body = encode_event(to_event(original, masked=True))
    for number in ("6222000011112222", "6222000099990000", "6230111122223333"):
        assert number.encode() not in body
    data = decode_event(body).data
    assert data.accounts == ["****2222", "****0000"]
    shown = data.evidence.metrics
    assert shown["credit_accounts"] == {"****2222": "10.00"}
    assert shown["inflow_by_account"] == {"****0000": "5.00"}
    assert shown["counterparty_account"] == "****3333"
    assert shown["nested"] == [{"x": "****0000"}]
    assert (
        shown["account_role"] == "customer_custody" and shown["count"] == 3 and shown["day"] == "2026-11-20"
    )
    # the internal form keeps the numbers for drill-down
    assert b"6222000011112222" in encode_event(to_event(original, masked=False))


def test_masking_keeps_the_alert_otherwise_whole():
    original = alert()
    data = decode_event(encode_event(to_event(original, masked=True))).data
    assert msgspec.structs.replace(data, accounts=original.accounts) == original
