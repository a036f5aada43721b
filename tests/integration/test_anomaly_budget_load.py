"""A worker starting again counts the anomaly alerts already stored in their region-day's budget
(streams/anomaly_budget.AnomalyBudgetGate.load), on a ClickHouse server and on chDB alike."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from models.anomaly_budget import Candidate, RegionDay
from models.thresholds import load_thresholds
from schemas.ddl import DATABASE
from schemas.fields import epoch_seconds
from streams.anomaly_budget import AnomalyBudgetGate
from streams.sink import ALERT_COLUMNS

pytestmark = pytest.mark.integration

# Days of their own, far from any other test's alerts in the shared stores of the run, and in the
# past: the dispatcher's reconciliation reads the newest window and write of the shared alerts
# table as "now", so a test's alert in the future would move every later test's clock.
DAY = "2019-03-07"
EARLY = epoch_seconds(f"{DAY}T02:10:00+08:00")  # Beijing 02:10, the UTC day before
# Written long ago: the alerts table is shared, and an alert written "in 2041" would be the newest
# write of the run, which others read as "now" (the dispatcher's reconciliation does).
WRITTEN_AT = epoch_seconds("2020-01-02T00:00:00+08:00")


def row(alert_id: str, typology: str, region: str, score: float, severity: str, start: int) -> list:
    return [alert_id, typology, severity, "open", score, "P1", region, Decimal("1.00"), start, start + 60,
            WRITTEN_AT, WRITTEN_AT, "{}", 1]  # fmt: skip


def test_stored_anomaly_alerts_use_their_room(storage):
    region = f"9{uuid.uuid4().int % 10**5:05d}"
    kept = [f"budget-{uuid.uuid4().hex}" for _ in range(2)]
    storage.insert(
        f"{DATABASE}.alerts",
        ALERT_COLUMNS,
        [
            row(kept[0], "anomaly", region, 0.71, "low", EARLY),
            row(kept[1], "anomaly", region, 0.93, "medium", EARLY + 3600),
            row(f"other-{uuid.uuid4().hex}", "large_value", region, 1.0, "low", EARLY),
        ],
    )
    # a day alone (no burst, no weekly window): 250 accounts give room for 2
    day_alone = {"FUNDWATCH_THRESHOLD__anomaly__daily_burst": "1", "FUNDWATCH_THRESHOLD__anomaly__window_days": "1"}
    gate = AnomalyBudgetGate(load_thresholds(day_alone), lambda: {region: 250})
    assert gate.load(storage) >= 2
    region_day = gate.ledger.days[(DAY, region)]  # the Beijing day, not the UTC one
    assert sorted(region_day.admitted) == sorted(kept) and region_day.low == 1
    # both taken: a new day of that region-day is withheld
    [decision] = gate.ledger.decide(
        [Candidate("new", DAY, region, 0.99, "medium")], gate.settings, gate.capacity
    )
    assert decision.capacity == 2 and not decision.admitted
    # as shipped, the day may take 3 days' worth (6): the stored two are counted in it
    shipped = AnomalyBudgetGate(load_thresholds({}), lambda: {region: 250})
    shipped.load(storage)
    [decision] = shipped.ledger.decide(
        [Candidate("new", DAY, region, 0.99, "medium")], shipped.settings, shipped.capacity
    )
    assert decision.capacity == 6 and decision.admitted and decision.used == 3


def test_stored_alerts_of_accounts_in_no_region_use_their_banks_room(storage):
    account, bank = f"62{uuid.uuid4().int % 10**14:014d}", f"BK{uuid.uuid4().hex[:6]}"
    storage.insert(
        f"{DATABASE}.ref_accounts",
        ["account_id", "bank_code", "institution_id", "role", "doc", "version"],
        [[account, bank, "", "investor", "{}", 1]],
    )
    stored = f"budget-{uuid.uuid4().hex}"
    alert = row(stored, "anomaly", "", 0.8, "low", EARLY)
    alert[12] = f'{{"alert_id": "{stored}", "accounts": ["{account}"]}}'  # the doc: its account
    storage.insert(f"{DATABASE}.alerts", ALERT_COLUMNS, [alert])
    gate = AnomalyBudgetGate(load_thresholds({}), lambda: {f"bank:{bank}": 50})
    gate.load(storage)
    assert stored in gate.ledger.days[(DAY, f"bank:{bank}")].admitted
    assert stored not in gate.ledger.days.get((DAY, ""), RegionDay()).admitted
