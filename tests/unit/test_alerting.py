"""Findings become alerts: stable ids, updates only when figures change, CloudEvents shape, masking."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from models.alerting import apply_finding
from models.findings import Finding, alert_id_for, severity_at_least
from schemas.alerts import AlertEvent, decode_event, encode_event, mask_account, to_event


def finding(**changes) -> Finding:
    base = Finding(
        typology="misappropriation",
        key="CUST-0001:2026-11-20",
        institution_id="I1",
        severity="high",
        score=0.6,
        accounts=("6222000011112222", "6222000099990000"),
        amount_cents=12_345_678,
        window_start=1_795_104_000,
        window_end=1_795_190_400,
        record_ids=("r2", "r1"),
        metrics={"uninstructed_debits": "123456.78"},
        thresholds={"high_amount": "100000.00", "config_version": "2026.11.1"},
        explanation_zh="存管账户****2222在无客户指令的情况下转出123,456.78元（《方案》二(一)）。",
        explanation_en="Custody account ****2222 paid out CNY 123,456.78 without a customer instruction.",
        rule="二(一)",
        detector_version="misappropriation/1",
    )
    return dataclasses.replace(base, **changes)


def test_alert_id_depends_only_on_typology_and_key():
    assert finding().alert_id == finding(amount_cents=1, severity="low").alert_id
    assert finding().alert_id != finding(key="CUST-0001:2026-11-21").alert_id
    assert alert_id_for("misappropriation", "k") != alert_id_for("self_financing", "k")


def test_finding_rejects_unknown_typology_severity_and_score():
    with pytest.raises(ValueError):
        finding(typology="fraud")
    with pytest.raises(ValueError):
        finding(severity="urgent")
    with pytest.raises(ValueError):
        finding(score=1.5)


def test_severity_order():
    assert severity_at_least("critical", "high") and severity_at_least("high", "high")
    assert not severity_at_least("medium", "high")


def test_first_finding_opens_an_alert_with_its_figures():
    alert = apply_finding(None, finding(), "220102", 1_795_200_000)
    assert alert is not None
    assert (alert.status, alert.revision, alert.amount, alert.region) == ("open", 1, "123456.78", "220102")
    assert alert.evidence.record_ids == ["r1", "r2"]
    assert alert.detector.name == "misappropriation" and alert.detector.version == "1"
    assert alert.created_at == alert.updated_at == "2026-11-20T18:40:00Z"


def test_the_same_finding_again_changes_nothing():
    alert = apply_finding(None, finding(), "220102", 1_795_200_000)
    assert apply_finding(alert, finding(), "220102", 1_795_300_000) is None
    # the order of record ids is not a change either
    assert apply_finding(alert, finding(record_ids=("r1", "r2")), "220102", 1_795_300_000) is None


def test_new_figures_update_the_same_alert_and_keep_its_status():
    alert = apply_finding(None, finding(), "220102", 1_795_200_000)
    alert = msgspec.structs.replace(alert, status="acknowledged")
    updated = apply_finding(
        alert, finding(amount_cents=20_000_000, record_ids=("r1", "r2", "r3")), "220102", 1_795_300_000
    )
    assert updated is not None
    assert updated.alert_id == alert.alert_id and updated.revision == 2
    assert updated.status == "acknowledged" and updated.created_at == alert.created_at
    assert updated.amount == "200000.00"


def test_cloudevent_structure_per_contract():
    alert = apply_finding(None, finding(), "220102", 1_795_200_000)
    doc = msgspec.json.decode(encode_event(to_event(alert, masked=False)))
    assert doc["specversion"] == "1.0" and doc["datacontenttype"] == "application/json"
    assert doc["type"] == "fundwatch.alert.misappropriation"
    assert doc["id"] == doc["data"]["alert_id"] and doc["subject"] == "I1"
    for key in ("alert_id", "typology", "severity", "score", "institution_id", "region", "accounts", "amount",
                "window_start", "window_end", "evidence", "explanation", "detector"):  # fmt: skip
        assert key in doc["data"], key
    assert set(doc["data"]["evidence"]) == {"record_ids", "metrics", "thresholds"}
    assert set(doc["data"]["explanation"]) == {"zh", "en"}
    assert isinstance(decode_event(encode_event(to_event(alert, masked=False))), AlertEvent)


def test_events_sent_outside_mask_accounts_to_the_last_four_characters():
    alert = apply_finding(None, finding(), "220102", 1_795_200_000)
    outside = encode_event(to_event(alert, masked=True)).decode()
    assert "6222000011112222" not in outside and "****2222" in outside and "****0000" in outside
    inside = to_event(alert, masked=False)
    assert inside.data.accounts == ["6222000011112222", "6222000099990000"]
    assert mask_account("abc") == "****" and mask_account("12345") == "****2345"


def test_fold_opens_then_stays_silent_for_replays_then_updates():
    from models.alerting import fold_findings

    memory, changed = fold_findings(None, [finding()], {"I1": "220102"}, 1_795_200_000)
    assert [(kind, alert.revision) for kind, alert in changed] == [("created", 1)]
    memory, changed = fold_findings(memory, [finding()], {"I1": "220102"}, 1_795_210_000)
    assert changed == []
    memory, changed = fold_findings(
        memory, [finding(amount_cents=99_999_999)], {"I1": "220102"}, 1_795_220_000
    )
    ((kind, alert),) = changed
    assert (kind, alert.revision, alert.amount, alert.created_at) == (
        "updated",
        2,
        "999999.99",
        "2026-11-20T18:40:00Z",
    )


def test_fold_reports_one_change_per_alert_per_message():
    from models.alerting import fold_findings

    memory, changed = fold_findings(
        None, [finding(amount_cents=1), finding(amount_cents=2)], {}, 1_795_200_000
    )
    assert len(changed) == 1 and changed[0][1].amount == "0.02" and changed[0][0] == "created"


def test_fold_forgets_alerts_whose_window_ended_long_ago():
    from models.alerting import ALERT_MEMORY_S, fold_findings

    old = finding(key="old", window_end=1_000_000)
    memory, _ = fold_findings(None, [old], {}, 1_795_200_000)
    memory, _ = fold_findings(memory, [finding(window_end=1_000_000 + ALERT_MEMORY_S + 1)], {}, 1_795_200_000)
    assert old.alert_id not in memory and finding().alert_id in memory


def test_fold_keeps_an_old_window_alert_while_it_is_reported_again():
    from models.alerting import ALERT_MEMORY_S, fold_findings

    product = finding(key="product:PRD1", window_start=1_000_000, window_end=1_000_000)
    memory, changed = fold_findings(None, [product], {}, 1_795_200_000)
    assert len(changed) == 1
    later = 1_000_000 + 3 * ALERT_MEMORY_S
    memory, changed = fold_findings(
        memory, [finding(key="day", window_end=later), product], {}, 1_795_200_000
    )
    assert product.alert_id in memory
    assert [alert.alert_id for _, alert in changed] == [finding(key="day").alert_id]
    # no longer reported: forgotten once the memory's newest time has moved on by the horizon
    memory, _ = fold_findings(memory, [finding(key="day2", window_end=later + ALERT_MEMORY_S + 1)], {}, 1)
    assert product.alert_id not in memory
