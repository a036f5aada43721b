"""The risk index of institutions, computed at read time from what ClickHouse holds now (alerts and
aggregates), so it follows alerts and flows as they change. The arithmetic is models/risk_index.py's;
this module only gathers its inputs, for many institutions in a few queries (docs/risk-index.md).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from models.risk_index import RiskConfig, RiskInputs, risk_index
from models.screening import screen
from schemas.desk import InstitutionSummary, OpenAlerts, RiskIndex
from services.gateway.desk_scope import iso, next_day_start
from services.gateway.desk_store import AlertRow, DeskStore, InstitutionRow

CUSTODY_ROLES = {"customer_custody", "payment_reserve"}
# where customer money must not land (DOMAIN.md): the institution's own and its related parties'
OTHER_ROLES = {"own_operating", "related_party"}


class Assessed:
    """One institution with its alerts and its risk index."""

    def __init__(self, row: InstitutionRow, alerts: list[AlertRow], index: RiskIndex, hits: int) -> None:
        self.row = row
        self.alerts = alerts
        self.index = index
        self.hits = hits

    def open_alerts(self) -> OpenAlerts:
        counts = dict.fromkeys(("low", "medium", "high", "critical"), 0)
        for alert in self.alerts:
            if alert.status != "disposed" and alert.severity in counts:
                counts[alert.severity] += 1
        return OpenAlerts(total=sum(counts.values()), **counts)

    def summary(self) -> InstitutionSummary:
        doc = self.row.doc
        return InstitutionSummary(
            id=self.row.institution_id, institution_id=self.row.institution_id, name=str(doc.get("name", "")),
            type=self.row.type, region=self.row.region, status=str(doc.get("status", "")),
            risk_index=self.index.value, open_alerts=self.open_alerts(), screening_hits=self.hits,
        )  # fmt: skip


class RiskAssessor:
    def __init__(self, store: DeskStore, config: RiskConfig) -> None:
        self.store = store
        self.config = config

    async def assess(self, institutions: list[InstitutionRow], prefix: str, now: datetime) -> list[Assessed]:
        """Every institution given, assessed; ``prefix`` is a region prefix that holds them all
        (it narrows the alert read)."""
        if not institutions:
            return []
        ids = [row.institution_id for row in institutions]
        wanted = set(ids)
        alerts: dict[str, list[AlertRow]] = defaultdict(list)
        # by prefix rather than by a list of ids: a region's alerts in one read, however many
        # institutions it holds; a single institution by its id
        rows = await self.store.alert_rows(prefix, institution_ids=ids if len(ids) <= 50 else None)
        for alert in rows:
            if alert.institution_id in wanted:
                alerts[alert.institution_id].append(alert)
        coverage = await self._coverage(ids, now)
        growth = await self._growth(ids, now)
        as_of = iso(now)
        history_since = now - timedelta(days=self.config.history.days)
        assessed = []
        for row in institutions:
            own = alerts.get(row.institution_id, [])
            hits = len(screen(str(row.doc.get("name", "")), str(row.doc.get("business_scope", ""))))
            custody, other = coverage.get(row.institution_id, (0, 0))
            before, recent = growth.get(row.institution_id, (0, 0))
            inputs = RiskInputs(
                as_of=as_of, open_alerts=_open_by_typology(own), custody_inflow_cents=custody,
                other_inflow_cents=other, recent_inflow_cents=recent, baseline_inflow_cents=before,
                history=_history(own, history_since), screening_hits=hits,
            )  # fmt: skip
            assessed.append(Assessed(row, own, risk_index(inputs, self.config), hits))
        return assessed

    async def _coverage(self, ids: list[str], now: datetime) -> dict[str, tuple[int, int]]:
        end = next_day_start(now)
        since = end - timedelta(days=self.config.custody_coverage.window_days)
        roles = {a["account_id"]: a.get("role") for a in await self.store.accounts(institution_ids=ids)}
        found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for institution, account, inflow in await self.store.account_inflows(ids, since, end):
            role = roles.get(account)
            if role in CUSTODY_ROLES:
                found[institution][0] += inflow
            elif role in OTHER_ROLES:
                found[institution][1] += inflow
        return {k: (v[0], v[1]) for k, v in found.items()}

    async def _growth(self, ids: list[str], now: datetime) -> dict[str, tuple[int, int]]:
        scale = self.config.growth
        end = next_day_start(now)  # the recent days end with today (Beijing)
        split = end - timedelta(days=scale.recent_days)
        since = split - timedelta(weeks=scale.baseline_weeks)
        return await self.store.institution_inflows(ids, since, split, end)


def _open_by_typology(alerts: list[AlertRow]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for alert in alerts:
        if alert.status != "disposed":
            found[alert.typology][alert.severity] += 1
    return {t: dict(s) for t, s in found.items()}


def _history(alerts: list[AlertRow], since: datetime) -> dict[str, int]:
    found: dict[str, int] = defaultdict(int)
    for alert in alerts:
        if alert.disposition != "false_positive" and alert.created_at >= since:
            found[alert.typology] += 1
    return dict(found)
