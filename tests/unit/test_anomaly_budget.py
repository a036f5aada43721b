"""The desks' budget for anomaly alerts (models/anomaly_budget.py, streams/anomaly_budget.py): at
most so many per scope (region, or the bank of accounts of no institution) and Beijing day, and
no more than the daily rate over any week; highest scores first, a share kept for the most
unusual days; an alert let through stays let through, and the same takes give the same
decisions."""

from __future__ import annotations

from fractions import Fraction

from models.anomaly_budget import (
    KEEP_DAYS,
    BudgetLedger,
    BudgetSettings,
    Candidate,
    budget_scope,
    settings_of,
)
from models.thresholds import load_thresholds
from schemas.alerts import AlertData, DetectorInfo, Evidence, Explanation
from streams.anomaly_budget import WITHHELD, AnomalyBudgetGate, accounts_by_scope, bank_lookup

SETTINGS = BudgetSettings(per_100_accounts=Fraction(1), min_per_region=1, reserved_share=Fraction(1, 2))


def candidate(
    alert_id: str, score: float, severity: str = "low", day: str = "2026-11-25", region: str = "220102"
):
    return Candidate(alert_id, day, region, score, severity)


def admitted(decisions) -> list[str]:
    return [d.candidate.alert_id for d in decisions if d.admitted]


def test_capacity_follows_the_accounts_of_the_region():
    assert [SETTINGS.capacity(n) for n in (0, 99, 100, 250, 1000)] == [1, 1, 1, 2, 10]
    assert [SETTINGS.reserved(c) for c in (1, 2, 3, 10)] == [0, 1, 1, 5]
    shipped = settings_of(load_thresholds({}).get("anomaly"))
    # models/thresholds.toml: 1 per 100 accounts, at least 1, half reserved; up to 3 days' worth
    # on one day while any 7 days stay within 7 days' worth
    assert shipped == WEEKLY


def test_highest_scores_first_within_a_take_and_a_share_kept_for_medium_days():
    ledger = BudgetLedger()
    take = [candidate("a", 0.61), candidate("b", 0.70), candidate("c", 0.65), candidate("d", 0.64)]
    # capacity 4, 2 of them reserved for medium days: the two highest low days get through
    assert admitted(ledger.decide(take, SETTINGS, lambda region: 4)) == ["b", "c"]
    # a later, higher low day finds no room; a medium day finds the reserved room, until it is used
    later = [candidate("e", 0.90), candidate("f", 0.80, "medium"), candidate("g", 0.79, "medium")]
    assert admitted(ledger.decide(later, SETTINGS, lambda region: 4)) == ["f", "g"]
    assert admitted(ledger.decide([candidate("h", 0.99, "medium")], SETTINGS, lambda region: 4)) == []
    region_day = ledger.days[("2026-11-25", "220102")]
    assert sorted(region_day.admitted) == ["b", "c", "f", "g"] and region_day.withheld == 4


def test_an_alert_let_through_stays_through_and_regions_and_days_are_apart():
    ledger = BudgetLedger()
    assert admitted(ledger.decide([candidate("a", 0.7)], SETTINGS, lambda region: 1)) == ["a"]
    # its update (another score) and a replay pass; a new one of the same region-day does not
    again = [candidate("a", 0.75), candidate("b", 0.99, "medium")]
    assert admitted(ledger.decide(again, SETTINGS, lambda region: 1)) == ["a"]
    other = [candidate("c", 0.6, region="220202"), candidate("d", 0.6, day="2026-11-26")]
    assert admitted(ledger.decide(other, SETTINGS, lambda region: 1)) == ["c", "d"]


def test_the_same_takes_give_the_same_decisions_whatever_order_within_them():
    take = [candidate(f"x{i}", 0.6 + i / 100, "medium" if i % 3 == 0 else "low") for i in range(12)]
    first = admitted(BudgetLedger().decide(take, SETTINGS, lambda region: 5))
    assert admitted(BudgetLedger().decide(list(reversed(take)), SETTINGS, lambda region: 5)) == first
    assert len(first) == 5


def test_stored_alerts_use_their_room_and_old_days_are_forgotten():
    ledger = BudgetLedger()
    ledger.admit_stored("old", "2026-11-25", "220102", 0.8, "low")
    assert admitted(ledger.decide([candidate("new", 0.99, "medium")], SETTINGS, lambda region: 1)) == []
    ledger.decide([candidate("later", 0.7, day="2027-02-01")], SETTINGS, lambda region: 1)
    assert ("2026-11-25", "220102") not in ledger.days and KEEP_DAYS == 45


WEEKLY = BudgetSettings(Fraction(1), 1, Fraction(1, 2), burst=3, window_days=7)


def _day(n: int) -> str:
    return f"2026-11-{n:02d}"


def test_a_busy_day_may_use_the_room_quiet_days_left_but_no_week_more_than_its_rate():
    ledger = BudgetLedger()
    # a quiet week start: the first day takes 3 days' worth (of which 1 kept for a medium day)
    first = [candidate(f"a{i}", 0.9 - i / 100, day=_day(1)) for i in range(4)]
    assert admitted(ledger.decide(first, WEEKLY, lambda region: 1)) == ["a0", "a1"]
    assert admitted(ledger.decide([candidate("m", 0.99, "medium", day=_day(1))], WEEKLY, lambda region: 1)) == ["m"]
    # the next days share the week's 7: 4 more, then nothing until the first day leaves the window
    later = [candidate(f"b{n}-{i}", 0.8, "medium", day=_day(n)) for n in range(2, 8) for i in range(3)]
    through = admitted(ledger.decide(later, WEEKLY, lambda region: 1))
    assert len(through) == 4 and through == ["b2-0", "b2-1", "b2-2", "b3-0"]
    # day 8's window (days 2-8) holds 4: room for 3 more, but one day takes at most 3
    eighth = [candidate(f"c{i}", 0.8, "medium", day=_day(8)) for i in range(5)]
    assert len(admitted(ledger.decide(eighth, WEEKLY, lambda region: 1))) == 3
    for start in range(1, 3):  # every run of 7 days holds at most 7
        assert sum(len(ledger.days[(_day(n), "220102")].admitted) for n in range(start, start + 7)
                   if (_day(n), "220102") in ledger.days) <= 7  # fmt: skip


def test_a_day_judged_late_counts_in_the_weeks_after_it_too():
    ledger = BudgetLedger()
    busy = [candidate(f"d{n}-{i}", 0.8, "medium", day=_day(n)) for n in (10, 11) for i in range(3)]
    assert len(admitted(ledger.decide(busy, WEEKLY, lambda region: 1))) == 6
    # day 5 is judged late: the run of days 5-11 already holds 6, so it gets 1, not 3
    late = [candidate(f"e{i}", 0.9, "medium", day=_day(5)) for i in range(3)]
    assert len(admitted(ledger.decide(late, WEEKLY, lambda region: 1))) == 1


def test_without_burst_or_window_a_day_has_its_daily_rate_and_no_more():
    ledger = BudgetLedger()
    take = [candidate(f"f{n}-{i}", 0.8 - i / 100, "medium", day=_day(n)) for n in (1, 2) for i in range(3)]
    assert admitted(ledger.decide(take, SETTINGS, lambda region: 2)) == ["f1-0", "f1-1", "f2-0", "f2-1"]


# The gate's tests below decide a day alone, as the budget did before the weekly window.
DAY_ALONE = {"FUNDWATCH_THRESHOLD__anomaly__daily_burst": "1", "FUNDWATCH_THRESHOLD__anomaly__window_days": "1"}


def alert(
    alert_id: str,
    score: float,
    severity: str = "low",
    typology: str = "anomaly",
    region: str = "220102",
    account: str = "6222020100002002",
):
    return AlertData(
        alert_id=alert_id, typology=typology, severity=severity, score=score, institution_id="P1",
        region=region, accounts=[account], amount="1.00", window_start="2026-11-25T02:00:00Z",
        window_end="2026-11-25T03:00:00Z",
        evidence=Evidence(record_ids=[], metrics={"day": "2026-11-25"}, thresholds={}),
        explanation=Explanation(zh="。", en="."), detector=DetectorInfo(name=typology, version="1"),
    )  # fmt: skip


def test_the_gate_withholds_what_is_over_and_passes_every_other_alert():
    counts = {"220102": 250, "220202": 40}
    gate = AnomalyBudgetGate(load_thresholds(DAY_ALONE), lambda: counts)
    changed = [
        ("created", alert("a1", 0.62)),
        ("created", alert("a2", 0.71)),
        ("created", alert("a3", 0.93, "medium")),
        ("created", alert("a4", 0.66)),
        ("created", alert("m1", 1.0, typology="misappropriation")),
        ("created", alert("b1", 0.61, region="220202")),
        ("created", alert("b2", 0.64, region="220202")),
    ]
    before = WITHHELD.labels("220102")._value.get(), WITHHELD.labels("220202")._value.get()
    out = gate(changed)
    # 220102: 250 accounts, capacity 2, one reserved: the best low day and the medium one;
    # 220202: 40 accounts, capacity 1 (the floor), nothing reserved: its best day
    assert [a.alert_id for _, a in out] == ["a2", "a3", "m1", "b2"]
    after = WITHHELD.labels("220102")._value.get(), WITHHELD.labels("220202")._value.get()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
    assert gate([("updated", alert("a2", 0.8))]) != []  # an update of one let through


def test_a_worker_holding_part_of_the_partitions_lets_through_its_share():
    gate = AnomalyBudgetGate(load_thresholds({}), lambda: {"220102": 1000}, share=lambda: 0.25)
    assert gate.capacity("220102") == 3  # 10 for the region, a quarter rounded up
    assert gate.capacity("999999") == 1  # never less than one


def test_accounts_are_counted_by_the_region_of_their_institution_else_by_their_bank():
    accounts = {
        "a": {"institution_id": "P1", "bank_code": "B001"},
        "b": {"institution_id": "P1", "bank_code": "B002"},
        "c": {"institution_id": None, "bank_code": "B001"},
        "d": {"institution_id": None, "bank_code": "B002"},
        "e": {"institution_id": None, "bank_code": "B002"},
        "f": {"institution_id": None},  # no bank either: the scope ""
    }
    institutions = {"P1": {"region": "220102"}}
    assert accounts_by_scope(accounts, institutions) == {"220102": 2, "bank:B001": 1, "bank:B002": 2, "": 1}
    assert budget_scope("220102", "B001") == "220102" and budget_scope("", "B001") == "bank:B001"
    assert budget_scope("", None) == ""


def test_alerts_of_accounts_in_no_region_share_their_banks_budget_not_one_for_all():
    # 250 free accounts at B001 (capacity 2), 150 at B002 (capacity 1): 400 in region "", which
    # as one scope would have had 4 in all, however the banks' days went
    accounts = {f"F1{i:04d}": {"bank_code": "B001"} for i in range(250)}
    accounts |= {f"F2{i:04d}": {"bank_code": "B002"} for i in range(150)}
    counts = accounts_by_scope(accounts, {})
    assert counts == {"bank:B001": 250, "bank:B002": 150}
    gate = AnomalyBudgetGate(load_thresholds(DAY_ALONE), lambda: counts, bank_of=bank_lookup(accounts))
    changed = [
        ("created", alert("x1", 0.70, region="", account="F10001")),
        ("created", alert("x2", 0.80, "medium", region="", account="F10002")),
        ("created", alert("x3", 0.75, region="", account="F10003")),
        ("created", alert("y1", 0.61, region="", account="F20001")),
        ("created", alert("y2", 0.95, "medium", region="", account="F20002")),
    ]
    before = WITHHELD.labels("bank:B001")._value.get(), WITHHELD.labels("bank:B002")._value.get()
    out = gate(changed)
    # B001: capacity 2, one reserved for medium: the best low day and the medium one;
    # B002: capacity 1 (the floor, nothing reserved): its best day
    assert [a.alert_id for _, a in out] == ["x2", "x3", "y2"]
    assert all(a.region == "" for _, a in out)  # the desks' region is unchanged
    after = WITHHELD.labels("bank:B001")._value.get(), WITHHELD.labels("bank:B002")._value.get()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert set(gate.ledger.days) == {("2026-11-25", "bank:B001"), ("2026-11-25", "bank:B002")}
