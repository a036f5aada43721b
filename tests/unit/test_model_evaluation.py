"""models/evaluation.py: pairing alerts with labels, and the scores."""

from __future__ import annotations

import pytest

from models.evaluation import SeenAlert, fold_alert_events, score
from models.findings import alert_id_for


def label(typology, key, kind="positive", records=(), start="2026-11-02T10:00:00+08:00", product=None):
    return {
        "label_id": f"{typology}/{key}", "typology": typology, "kind": kind, "key": key,
        "record_ids": list(records), "window_start": start, "product_id": product,
    }  # fmt: skip


def alert(typology, key, records=(), first="2026-11-02T10:00:00+08:00"):
    from datetime import datetime

    return SeenAlert(
        alert_id=alert_id_for(typology, key),
        typology=typology,
        record_ids=frozenset(records),
        first_event_time=int(datetime.fromisoformat(first).timestamp()),
    )


def test_pairs_by_key_and_counts_delay_in_event_time():
    scores = score(
        [label("misappropriation", "A:2026-11-02")],
        [alert("misappropriation", "A:2026-11-02", first="2026-11-02T10:30:00+08:00")],
    )
    s = scores["misappropriation"]
    assert (s.labels, s.alerts, s.labels_found, s.alerts_true) == (1, 1, 1, 1)
    assert s.precision == s.recall == s.f1 == 1.0
    assert s.delays_s == [1800]


def test_pairs_by_shared_record_ids_when_keys_differ():
    scores = score(
        [label("fund_pool", "acct:V014", records=["r1", "r2"])],
        [alert("fund_pool", "acct:2026-11-02", records=["r2", "r9"])],
    )
    assert scores["fund_pool"].recall == 1.0 and scores["fund_pool"].precision == 1.0


def test_pairs_a_product_label_with_the_product_alert():
    scores = score(
        [label("excess_return", "V030-yield_above_project", product="PRD0007")],
        [alert("excess_return", "product:PRD0007")],
    )
    assert scores["excess_return"].labels_found == 1


def test_false_alerts_missed_labels_and_hard_negatives():
    scores = score(
        [
            label("commingling", "A:2026-11-02"),
            label("commingling", "B:2026-11-02"),
            label("commingling", "V019-own", kind="hard_negative", records=["h1"]),
        ],
        [
            alert("commingling", "A:2026-11-02"),
            alert("commingling", "C:2026-11-02"),
            alert("commingling", "D:2026-11-02", records=["h1"]),
        ],
    )
    s = scores["commingling"]
    assert (s.labels, s.alerts, s.labels_found, s.alerts_true) == (2, 3, 1, 1)
    assert s.precision == pytest.approx(1 / 3) and s.recall == 0.5
    assert s.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert (s.hard_negatives, s.hard_negatives_flagged) == (1, 1)
    assert s.missed == ["commingling/B:2026-11-02"]
    assert len(s.false_alerts) == 2


def test_an_alert_of_another_typology_does_not_pair():
    scores = score([label("self_financing", "A:B")], [alert("misappropriation", "A:B")])
    assert scores["self_financing"].recall == 0.0
    assert scores["misappropriation"].precision == 0.0


def test_typologies_without_labels_or_alerts_are_left_out():
    assert score([], []) == {}


def test_fold_keeps_the_latest_revision_and_the_first_time():
    events = [
        {"alert_id": "x", "typology": "large_value", "revision": 2, "window_end": "2026-11-02T05:00:00Z",
         "evidence": {"record_ids": ["r1", "r2"]}},
        {"alert_id": "x", "typology": "large_value", "revision": 1, "window_end": "2026-11-02T03:00:00Z",
         "evidence": {"record_ids": ["r1"]}},
        {"alert_id": "x", "typology": "large_value", "revision": 2, "window_end": "2026-11-02T05:00:00Z",
         "evidence": {"record_ids": ["r1", "r2"]}},
    ]  # fmt: skip
    (folded,) = fold_alert_events(events)
    assert folded.record_ids == {"r1", "r2"}
    assert folded.first_event_time == 1_793_588_400  # 2026-11-02T03:00:00Z
    assert folded.data["revision"] == 2


def test_delay_counts_from_the_start_of_the_data_at_the_earliest():
    from datetime import datetime

    start = int(datetime.fromisoformat("2026-11-02T00:00:00+08:00").timestamp())
    scores = score(
        [label("excess_return", "product:P1", start="2026-06-03T09:00:00+08:00")],
        [alert("excess_return", "product:P1", first="2026-11-03T00:00:00+08:00")],
        data_start=start,
    )
    assert scores["excess_return"].delays_s == [86400]


def test_labels_the_data_cannot_settle_are_counted_apart_and_an_alert_on_one_is_still_true():
    decidable = {**label("excess_return", "product:P1"), "label_id": "L1"}
    blind = {**label("excess_return", "product:P2"), "label_id": "L2"}
    found = score([decidable, blind], [alert("excess_return", "product:P1")], undecidable={"L2"})
    s = found["excess_return"]
    assert (s.labels, s.labels_found, s.undecidable, s.recall) == (1, 1, 1, 1.0)
    both = score([decidable, blind], [alert("excess_return", "product:P1"), alert("excess_return", "product:P2")],
                 undecidable={"L2"})["excess_return"]  # fmt: skip
    assert (both.alerts, both.alerts_true, both.precision) == (2, 2, 1.0)
