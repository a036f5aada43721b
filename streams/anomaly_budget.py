"""The desks' budget for `anomaly` alerts, where the worker publishes alerts (streams/sink.py
``Sink.budget``, after each alert's case and suppression are laid over it): the rule is in
models/anomaly_budget.py, which says why it lives here and not in the detector.

The budget's scope is the region of the account's institution, or for an account of none its
bank ("bank:<code>", models/anomaly_budget.budget_scope). A scope's capacity follows the accounts
registered in it (the worker's reference view, counted again at most once a minute) and this
worker's share of the records partitions: the accounts of a scope spread evenly over the
partitions (the gateway routes by a hash of the account), so a worker holding half of them lets
through half of the scope's budget, rounded up. A withheld alert is counted per scope
(``fundwatch_anomaly_alerts_withheld_total``, label ``region``: a region, or "bank:<code>") and,
the first time a scope-day fills, logged with the scope, the day and the capacity; no account is
named.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter

from models.anomaly_budget import KEEP_DAYS, BudgetLedger, Candidate, budget_scope, settings_of
from models.detectors.common import beijing_date
from models.thresholds import Thresholds
from schemas.alerts import AlertData
from schemas.ddl import DATABASE

log = logging.getLogger("fundwatch.worker")

TYPOLOGY = "anomaly"
COUNT_EVERY_S = 60.0  # how often the accounts per region are counted again

WITHHELD = Counter(
    "fundwatch_anomaly_alerts_withheld_total",
    "Anomaly alerts not published because their scope's (region's, or for accounts of no institution"
    " their bank's) budget for the Beijing day was used",
    ["region"],
)

Changed = list[tuple[str, AlertData]]


def accounts_by_scope(
    accounts: Mapping[str, dict[str, Any]], institutions: Mapping[str, dict[str, Any]]
) -> dict[str, int]:
    """Registered accounts per budget scope: the region of their institution, "bank:<code>" for
    accounts of none."""
    counts: dict[str, int] = {}
    for account in accounts.values():
        institution = institutions.get(str(account.get("institution_id") or "")) or {}
        scope = budget_scope(str(institution.get("region") or ""), _bank(account))
        counts[scope] = counts.get(scope, 0) + 1
    return counts


def bank_lookup(accounts: Mapping[str, dict[str, Any]]) -> Callable[[str], str | None]:
    """account id -> its bank code, from the registered accounts (the alert's account)."""
    return lambda account_id: _bank(accounts.get(account_id))


def _bank(account: Mapping[str, Any] | None) -> str | None:
    return str(account.get("bank_code") or "") or None if account else None


class AnomalyBudgetGate:
    def __init__(
        self,
        thresholds: Thresholds,
        count_accounts: Callable[[], Mapping[str, int]],
        share: Callable[[], float] = lambda: 1.0,
        clock: Callable[[], float] = time.monotonic,
        bank_of: Callable[[str], str | None] = lambda account_id: None,
    ) -> None:
        """``count_accounts``: registered accounts per scope (accounts_by_scope); ``bank_of``:
        an account's bank code, the scope of an alert whose account is in no region."""
        self.settings = settings_of(thresholds.get(TYPOLOGY))
        self.bank_of = bank_of
        self.ledger = BudgetLedger()
        self.count_accounts = count_accounts
        self.share = share
        self.clock = clock
        self._counts: Mapping[str, int] = {}
        self._counted_at: float | None = None

    def load(self, storage: Any) -> int:
        """The anomaly alerts stored of the last days, each in its scope-day (blocking: start-up
        only), so a restarted worker does not open its budget again. The reference view is not
        read yet then: the bank of an alert in no region comes from ``ref_accounts``."""
        rows = storage.query(
            f"""SELECT alert_id, region, toUnixTimestamp(window_start), score, severity,
                       visitParamExtractRaw(doc, 'accounts')
                FROM {DATABASE}.alerts FINAL
                WHERE typology = %(typology)s AND window_start >= (
                    SELECT max(window_start) - INTERVAL {KEEP_DAYS} DAY FROM {DATABASE}.alerts
                    WHERE typology = %(typology)s)""",
            {"typology": TYPOLOGY},
        )
        # the alert's account, for those in no region (the oldest servers have no JSONExtract)
        accounts = {str(row[0]): _first_account(row[5]) for row in rows if not row[1]}
        banks = _stored_banks(storage, sorted({a for a in accounts.values() if a}))
        for alert_id, region, window_start, score, severity, _ in rows:
            day = beijing_date(int(window_start))
            scope = budget_scope(str(region), banks.get(accounts.get(str(alert_id)) or ""))
            self.ledger.admit_stored(str(alert_id), day, scope, float(score), str(severity))
        return len(rows)

    def capacity(self, scope: str) -> int:
        now = self.clock()
        if self._counted_at is None or now - self._counted_at >= COUNT_EVERY_S:
            self._counts, self._counted_at = dict(self.count_accounts()), now
        whole = self.settings.capacity(self._counts.get(scope, 0))
        return max(1, math.ceil(whole * min(1.0, max(0.0, self.share()))))

    def __call__(self, changed: Changed) -> Changed:
        """The changed alerts without the anomaly alerts the budget withholds."""
        candidates = [self._candidate(alert) for _, alert in changed if alert.typology == TYPOLOGY]
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
                    "anomaly budget used scope=%s day=%s capacity=%d; further anomaly alerts of it withheld",
                    candidate.region or "-",
                    candidate.day,
                    decision.capacity,
                )
        return [(event, alert) for event, alert in changed if alert.alert_id not in withheld]

    def _candidate(self, alert: AlertData) -> Candidate:
        day = alert.evidence.metrics.get("day")
        bank = self.bank_of(alert.accounts[0]) if not alert.region and alert.accounts else None
        return Candidate(
            alert_id=alert.alert_id,
            day=str(day) if day else alert.window_start[:10],
            region=budget_scope(alert.region, bank),
            score=alert.score,
            severity=alert.severity,
        )


def _first_account(raw: Any) -> str | None:
    """The first of a stored alert's ``accounts`` (its raw JSON array), or None."""
    try:
        accounts = json.loads(raw or "[]")
    except ValueError:
        return None
    return str(accounts[0]) if isinstance(accounts, list) and accounts else None


def _stored_banks(storage: Any, account_ids: list[str]) -> dict[str, str]:
    """account id -> bank code of the registered accounts among ``account_ids``."""
    if not account_ids:
        return {}
    rows = storage.query(
        f"SELECT account_id, bank_code FROM {DATABASE}.ref_accounts FINAL WHERE account_id IN %(accounts)s",
        {"accounts": tuple(account_ids)},
    )
    return {str(account_id): str(bank) for account_id, bank in rows if bank}
