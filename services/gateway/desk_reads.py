"""The desk workspace's reads (CONTRACT.md §2): institutions with their risk index, the dossier
(一户一档), accounts, the regional overview. Scoping is desk_scope.py's; queries are desk_store.py's;
the risk index is desk_risk.py's; the risk report is risk_report.py's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.risk_index import RiskConfig
from models.screening import screen
from schemas.desk import (
    AccountList,
    AccountQuery,
    AccountView,
    AlertBrief,
    DailyFlow,
    Dossier,
    DossierAlerts,
    InstitutionList,
    InstitutionQuery,
    Overview,
    OverviewQuery,
    ProductView,
    Profile,
    RegionCount,
    RegionLevelCounts,
    RegionLevels,
    RelatedPartyView,
    Screening,
    ScreeningHit,
    TrendDay,
)
from schemas.fields import BEIJING, cents_to_text
from services.auth import Principal
from services.gateway.desk_risk import Assessed, RiskAssessor
from services.gateway.desk_scope import (
    beijing_day,
    day_number,
    desk_scope,
    iso,
    mask_holder,
    narrowed,
    next_day_start,
    not_found,
)
from services.gateway.desk_store import AlertRow, DeskStore, InstitutionRow
from services.gateway.errors import ApiError, parse_query

DOSSIER_ALERTS = 500  # the newest alerts of an institution shown in its dossier
FLOW_DAYS = 90
TREND_DAYS = 30
SEVERITIES = ("low", "medium", "high", "critical")
LEVELS = (("province", 2), ("city", 4), ("county", 6))


class DeskReads:
    def __init__(self, store: DeskStore, config: RiskConfig) -> None:
        self.store = store
        self.config = config
        self.risk = RiskAssessor(store, config)

    # --- institutions ----------------------------------------------------------------------------

    async def institutions(self, principal: Principal, query: Mapping[str, str]) -> InstitutionList:
        scope = desk_scope(principal, "institutions")
        ask = parse_query(query, InstitutionQuery)
        prefix = narrowed(scope, ask.region)
        rows = [r for r in await self.store.institutions(prefix, ask.type) if _matches(r, ask.q)]
        rows = rows[: ask.limit]
        assessed = await self.risk.assess(rows, prefix, datetime.now(UTC))
        return InstitutionList(
            institutions=[a.summary() for a in assessed], risk_index_version=self.config.version
        )

    async def ranked(self, prefix: str, now: datetime, limit: int) -> list[Assessed]:
        """Every institution of a region, assessed, the riskiest first."""
        assessed = await self.risk.assess(await self.store.institutions(prefix), prefix, now)
        return sorted(assessed, key=lambda a: (-a.index.value, a.row.institution_id))[:limit]

    async def dossier(self, principal: Principal, institution_id: str) -> Dossier:
        scope = desk_scope(principal, "institutions")
        found = await self.store.institutions(scope, ids=[institution_id])
        if not found:
            raise not_found("institution")
        row, now = found[0], datetime.now(UTC)
        (assessed,) = await self.risk.assess([row], row.region, now)
        accounts = await self.store.accounts(institution_id)
        by_role: dict[str, list[AccountView]] = defaultdict(list)
        for account in accounts:
            by_role[str(account.get("role"))].append(_account_view(account, principal.role == "desk"))
        flows = await self.store.daily_flows(institution_id, next_day_start(now) - timedelta(days=FLOW_DAYS))
        alerts = [_brief(doc) for doc in await self.store.alert_docs(institution_id, DOSSIER_ALERTS)]
        doc = row.doc
        hits = screen(str(doc.get("name", "")), str(doc.get("business_scope", "")))
        return Dossier(
            profile=_profile(row),
            accounts_by_role=dict(by_role),
            products=[_product(p) for p in await self.store.reference_of("ref_products", institution_id)],
            related_parties=[_party(p) for p in await self.store.reference_of("ref_related_parties", institution_id)],
            daily_flows=[
                DailyFlow(day=day.astimezone(BEIJING).date().isoformat(), currency=ccy, inflow=cents_to_text(i),
                          outflow=cents_to_text(o), credits=n_in, debits=n_out)  # fmt: skip
                for day, ccy, i, o, n_in, n_out in flows
            ],
            alerts=DossierAlerts(
                open=[a for a in alerts if a.status != "disposed"], past=[a for a in alerts if a.status == "disposed"]
            ),
            screening=Screening(listed=bool(hits), hits=[ScreeningHit(h.keyword, h.field) for h in hits]),  # type: ignore[arg-type]
            risk_index=assessed.index,
        )

    # --- accounts --------------------------------------------------------------------------------

    async def accounts(self, principal: Principal, query: Mapping[str, str]) -> AccountList:
        if principal.role not in {"admin", "desk", "bank"}:
            raise ApiError(403, "forbidden", f"{principal.role} tokens may not read accounts")
        ask = parse_query(query, AccountQuery)
        if principal.role == "bank":
            # a bank sees its own bank's accounts, whatever their institution's region
            found = await self.store.accounts(ask.institution_id, bank_code=principal.bank_code, limit=ask.limit)
            return AccountList([_account_view(a, masked=False) for a in found])
        scope = desk_scope(principal, "accounts")
        if ask.institution_id is not None:
            if not await self.store.institutions(scope, ids=[ask.institution_id]):
                raise not_found("institution")
            found = await self.store.accounts(ask.institution_id, limit=ask.limit)
        elif scope:
            ids = [r.institution_id for r in await self.store.institutions(scope)]
            found = await self.store.accounts(institution_ids=ids, limit=ask.limit)
        else:
            found = await self.store.accounts(limit=ask.limit)
        return AccountList([_account_view(a, masked=principal.role == "desk") for a in found])

    # --- overview --------------------------------------------------------------------------------

    async def overview(self, principal: Principal, query: Mapping[str, str]) -> Overview:
        scope = desk_scope(principal, "the overview")
        ask = parse_query(query, OverviewQuery)
        prefix = narrowed(scope, ask.region)
        now = datetime.now(UTC)
        alerts = await self.store.alert_rows(prefix)
        institutions = await self.store.institutions(prefix)
        top = await self.ranked(prefix, now, ask.limit)
        return Overview(
            region=prefix, generated_at=iso(now), alerts=len(alerts),
            open_alerts=sum(1 for a in alerts if a.status != "disposed"),
            by_typology=dict(Counter(a.typology for a in alerts)),
            by_severity={s: sum(1 for a in alerts if a.severity == s) for s in SEVERITIES},
            by_status=dict(Counter(a.status for a in alerts)),
            by_region=_region_levels(alerts, institutions),
            trend=await self._trend(prefix, now),
            top_institutions=[a.summary() for a in top], risk_index_version=self.config.version,
        )  # fmt: skip

    async def _trend(self, prefix: str, now: datetime) -> list[TrendDay]:
        last = day_number(now)
        first = last - TREND_DAYS + 1
        since = datetime.fromtimestamp(first * 86400 - 8 * 3600, UTC)
        by_day: dict[int, dict[str, int]] = {d: dict.fromkeys(SEVERITIES, 0) for d in range(first, last + 1)}
        for day, severity, count in await self.store.alert_days(prefix, since):
            if day in by_day and severity in by_day[day]:
                by_day[day][severity] += count
        return [TrendDay(day=beijing_day(d), alerts=sum(s.values()), by_severity=s) for d, s in by_day.items()]


def _matches(row: InstitutionRow, q: str | None) -> bool:
    if not q:
        return True
    needle = q.casefold()
    return any(needle in str(v).casefold() for v in (row.institution_id, row.doc.get("name"), row.doc.get("uscc")))


def _region_levels(alerts: list[AlertRow], institutions: list[InstitutionRow]) -> RegionLevelCounts:
    levels: dict[str, list[RegionCount]] = {}
    for level, width in LEVELS:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for alert in alerts:
            if alert.region:
                entry = counts[alert.region[:width]]
                entry[0] += 1
                entry[1] += alert.status != "disposed"
        for row in institutions:
            counts[row.region[:width]][2] += 1
        levels[level] = sorted(
            (RegionCount(region=r, alerts=a, open=o, institutions=n) for r, (a, o, n) in counts.items()),
            key=lambda c: (-c.alerts, c.region),
        )
    return RegionLevelCounts(**levels)


def _profile(row: InstitutionRow) -> Profile:
    doc = row.doc
    return Profile(
        institution_id=row.institution_id, name=str(doc.get("name", "")), uscc=str(doc.get("uscc", "")),
        type=row.type, region=row.region,
        region_levels=RegionLevels(province=row.region[:2], city=row.region[:4], county=row.region[:6]),
        business_scope=str(doc.get("business_scope", "")), licences=list(doc.get("licences") or []),
        status=str(doc.get("status", "")),
    )  # fmt: skip


def _account_view(doc: dict[str, Any], masked: bool) -> AccountView:
    holder = str(doc.get("holder_name", ""))
    return AccountView(
        account_id=doc["account_id"], bank_code=str(doc.get("bank_code", "")),
        institution_id=doc.get("institution_id"), role=str(doc.get("role", "")),
        holder_name=mask_holder(holder) if masked else holder, holder_masked=masked,
        product_id=doc.get("product_id"),
    )  # fmt: skip


def _product(doc: dict[str, Any]) -> ProductView:
    declared, underlying = doc.get("declared_annual_yield"), doc.get("underlying_project_rate")
    spread = None
    if declared is not None and underlying is not None:
        spread = str(Decimal(declared) - Decimal(underlying))
    return ProductView(
        product_id=doc["product_id"], name=str(doc.get("name", "")), declared_annual_yield=str(declared),
        underlying_project_rate=underlying, yield_spread=spread, term_days=int(doc.get("term_days") or 0),
        underlying_term_days=doc.get("underlying_term_days"), investor_cap=doc.get("investor_cap"),
        sale_start=doc.get("sale_start"), sale_end=doc.get("sale_end"),
    )  # fmt: skip


def _party(doc: dict[str, Any]) -> RelatedPartyView:
    return RelatedPartyView(party_id=doc["party_id"], name=str(doc.get("name", "")),
                            relation=str(doc.get("relation", "")), accounts=list(doc.get("accounts") or []))  # fmt: skip


def _brief(doc: dict[str, Any]) -> AlertBrief:
    return AlertBrief(
        alert_id=doc["alert_id"], typology=doc.get("typology", ""), severity=doc.get("severity", ""),
        status=doc.get("status", "open"), disposition=doc.get("disposition"), assignee=doc.get("assignee"),
        amount=str(doc.get("amount", "0.00")), window_start=doc.get("window_start", ""),
        window_end=doc.get("window_end", ""), created_at=doc.get("created_at", ""),
        updated_at=doc.get("updated_at", ""),
    )  # fmt: skip
