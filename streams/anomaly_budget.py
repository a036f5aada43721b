"""The desks' budget for `anomaly` alerts, where the worker publishes alerts (streams/sink.py
``Sink.budget``, after each alert's case and suppression are laid over it): the rule is in
models/anomaly_budget.py, which says why it lives here and not in the detector.

A region's capacity follows the accounts registered in it (the worker's reference view, counted
again at most once a minute) and this worker's share of the records partitions: the accounts of
a region spread evenly over the partitions (the gateway routes by a hash of the account), so a
worker holding half of them lets through half of the region's budget, rounded up. A withheld
alert is counted per region (``fundwatch_anomaly_alerts_withheld_total``) and, the first time a
region-day fills, logged with the region, the day and the capacity; no account is named.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter

from models.anomaly_budget import KEEP_DAYS, BudgetLedger, Candidate, settings_of
from models.detectors.common import beijing_date
from models.thresholds import Thresholds
from schemas.alerts import AlertData
from schemas.ddl import DATABASE

log = logging.getLogger("fundwatch.worker")

TYPOLOGY = "anomaly"
COUNT_EVERY_S = 60.0  # how often the accounts per region are counted again

WITHHELD = Counter(
    "fundwatch_anomaly_alerts_withheld_total",
    "Anomaly alerts not published because their region's budget for the Beijing day was used",
    ["region"],
)

Changed = list[tuple[str, AlertData]]


def accounts_by_region(
    accounts: Mapping[str, dict[str, Any]], institutions: Mapping[str, dict[str, Any]]
) -> dict[str, int]:
    """Registered accounts per region of their institution ("" for accounts of none)."""
    counts: dict[str, int] = {}
    for account in accounts.values():
        institution = institutions.get(str(account.get("institution_id") or "")) or {}
        region = str(institution.get("region") or "")
        counts[region] = counts.get(region, 0) + 1
    return counts


class AnomalyBudgetGate:
    def __init__(
        self,
        thresholds: Thresholds,
        count_accounts: Callable[[], Mapping[str, int]],
        share: Callable[[], float] = lambda: 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings_of(thresholds.get(TYPOLOGY))
        self.ledger = BudgetLedger()
        self.count_accounts = count_accounts
        self.share = share
        self.clock = clock
        self._counts: Mapping[str, int] = {}
        self._counted_at: float | None = None

    def load(self, storage: Any) -> int:
        """The anomaly alerts stored of the last days, each in its region-day (blocking: start-up
        only), so a restarted worker does not open its budget again."""
        rows = storage.query(
            f"""SELECT alert_id, region, toUnixTimestamp(window_start), score, severity
                FROM {DATABASE}.alerts FINAL
                WHERE typology = %(typology)s AND window_start >= (
                    SELECT max(window_start) - INTERVAL {KEEP_DAYS} DAY FROM {DATABASE}.alerts
                    WHERE typology = %(typology)s)""",
            {"typology": TYPOLOGY},
        )
        for alert_id, region, window_start, score, severity in rows:
            day = beijing_date(int(window_start))
            self.ledger.admit_stored(str(alert_id), day, str(region), float(score), str(severity))
        return len(rows)

    def capacity(self, region: str) -> int:
        now = self.clock()
        if self._counted_at is None or now - self._counted_at >= COUNT_EVERY_S:
            self._counts, self._counted_at = dict(self.count_accounts()), now
        whole = self.settings.capacity(self._counts.get(region, 0))
        return max(1, math.ceil(whole * min(1.0, max(0.0, self.share()))))

    def __call__(self, changed: Changed) -> Changed:
        """The changed alerts without the anomaly alerts the budget withholds."""
        candidates = [_candidate(alert) for _, alert in changed if alert.typology == TYPOLOGY]
        if not candidates:
            return changed
        withheld: set[str] = set()
        for decision in self.ledger.decide(candidates, self.settings, self.capacity):
            if decision.admitted:
                continue
            candidate = decision.candidate
            withheld.add(candidate.alert_id)
            WITHHELD.labels(candidate.region).inc()
            region_day = self.ledger.days.get((candidate.day, candidate.region))
            if region_day is not None and region_day.withheld == 1:
                log.info(
                    "anomaly budget used region=%s day=%s capacity=%d; further anomaly alerts of it withheld",
                    candidate.region or "-",
                    candidate.day,
                    decision.capacity,
                )
        return [(event, alert) for event, alert in changed if alert.alert_id not in withheld]


def _candidate(alert: AlertData) -> Candidate:
    day = alert.evidence.metrics.get("day")
    return Candidate(
        alert_id=alert.alert_id,
        day=str(day) if day else alert.window_start[:10],
        region=alert.region,
        score=alert.score,
        severity=alert.severity,
    )
