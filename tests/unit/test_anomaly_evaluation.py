"""Scoring the anomaly typology against the simulator's patterns (models/anomaly_evaluation.py):
a pattern is found by an alert naming one of its account-days; precision, the alert rate and the
hard negatives on plain inputs."""

from __future__ import annotations

from models.anomaly_evaluation import (
    AlertedDay,
    PatternDays,
    alerted_days,
    beijing_day,
    pattern_days,
    score_patterns,
)


def hop(at: str, payer: str, payee: str) -> dict:
    return {"at": at, "payer": payer, "payee": payee, "amount": "100.00"}


def test_account_days_are_beijing_days_of_registered_accounts_only():
    plan = [{"injection_id": "P001-cycle", "shape": "cycle", "kind": "positive", "hops": [
        hop("2026-11-02T23:30:00+08:00", "A", "B"),
        hop("2026-11-02T16:10:00Z", "B", "OUTSIDE"),  # 00:10 on the 3rd in Beijing
    ]}]  # fmt: skip
    [found] = pattern_days(plan, registered={"A", "B"})
    assert found.account_days == {("A", "2026-11-02"), ("B", "2026-11-02"), ("B", "2026-11-03")}
    assert beijing_day(0) == "1970-01-01"


def test_recall_per_shape_precision_rate_and_hard_negatives():
    patterns = [
        PatternDays("P1", "cycle", "positive", frozenset({("A", "d1"), ("B", "d2")})),
        PatternDays("P2", "cycle", "positive", frozenset({("C", "d1")})),
        PatternDays("P3", "stack", "positive", frozenset({("D", "d3")})),
        PatternDays("P4", "payroll_run", "hard_negative", frozenset({("E", "d1")})),
        PatternDays("P5", "family_circle", "hard_negative", frozenset({("F", "d2")})),
    ]
    alerts = [
        AlertedDay("x1", "B", "d2"),  # finds P1
        AlertedDay("x2", "A", "d2"),  # A is P1's, but not on a day P1 moved money through it
        AlertedDay("x3", "D", "d3"),  # finds P3
        AlertedDay("x4", "E", "d1"),  # flags the payroll run
    ]
    s = score_patterns(patterns, alerts, accounts=200, days=2.0)
    assert (s.shapes["cycle"].found, s.shapes["cycle"].patterns, s.shapes["cycle"].missed) == (1, 2, ["P2"])
    assert s.shapes["stack"].recall == 1.0
    assert (s.found, s.positives, s.recall) == (2, 3, 2 / 3)
    assert (s.alerts_hitting, s.alerts, s.precision) == (2, 4, 0.5)
    assert s.false_alerts == ["x2", "x4"]
    assert (s.hard_negatives_flagged, s.hard_negatives) == (1, 2)
    assert s.per_100_accounts_per_day == 1.0  # 4 alerts over 200 accounts and 2 days
    assert not s.meets()  # a hard negative flagged, recall under 70 %
    assert score_patterns(patterns[:1], alerts[:1], accounts=200, days=2.0).meets()


def test_nothing_to_score_gives_no_ratio():
    s = score_patterns([], [], accounts=0, days=0)
    assert s.recall is None and s.precision is None and s.per_100_accounts_per_day is None


def test_alerted_days_read_the_anomaly_alerts_only():
    alerts = [
        {"alert_id": "a", "typology": "anomaly", "accounts": ["A"], "window_start": "2026-11-02T01:00:00Z",
         "evidence": {"metrics": {"day": "2026-11-02"}}},
        {"alert_id": "b", "typology": "anomaly", "accounts": ["B"], "window_start": "2026-11-02T17:00:00Z",
         "evidence": {}},  # no day in the metrics: the Beijing day of the window's start
        {"alert_id": "c", "typology": "large_value", "accounts": ["C"], "window_start": "2026-11-02T01:00:00Z"},
    ]  # fmt: skip
    assert alerted_days(alerts) == [AlertedDay("a", "A", "2026-11-02"), AlertedDay("b", "B", "2026-11-03")]
