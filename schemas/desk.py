"""The desk workspace's read API (CONTRACT.md §2): institutions and their dossier (一户一档),
accounts, look-through tracing (穿透), the regional overview and the risk report for the leading
group (四(二)4, 四(四)). The query Structs validate the query strings (422 naming the parameter);
the answer Structs are what the gateway encodes and what /v1/openapi.json describes, so the
console reads the same shapes the document shows.

Money is the contract's amount string with 2 decimals ("12345.67"); times are RFC 3339 in UTC
("...Z"); days are Beijing calendar days ("2026-11-25"). Field names here are stable: the console
is built against them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from schemas.api import AlertRegion, Limit
from schemas.fields import Currency, Id, patterned, time_breaks_rule

InstitutionTypeName = Literal[
    "p2p_lending", "equity_crowdfunding", "internet_insurance", "asset_management", "payment",
    "real_estate", "other",
]  # fmt: skip
ReportFormat = Literal["json", "html", "xlsx"]
TerminalReason = Literal["final_use", "not_monitored", "cycle", "hop_limit", "outside_region"]

# A day (the start of that Beijing day) or an RFC 3339 time with an offset: a desk asks for "the
# month of November" as from=2026-11-01&to=2026-12-01.
DAY_OR_TIME_RULE = (
    'a day "2026-11-01" (Beijing, from its start) or an RFC 3339 time with an offset, '
    'in the years 2000 to 2100, e.g. "2026-11-01T00:00:00+08:00"'
)
DayOrTime = Annotated[
    str,
    patterned(
        r"(20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}"
        r"([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2}))?",
        DAY_OR_TIME_RULE,
    ),
]
SearchText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, description="text of 1 to 100 characters")
]
MAX_HOPS = 6  # the deepest trace served; more is capped to this and the answer says so
Hops = Annotated[
    int,
    msgspec.Meta(ge=1, le=100, description=f"how many hops to follow, from 1; more than {MAX_HOPS} is capped"),
]
FanOut = Annotated[
    int, msgspec.Meta(ge=1, le=50, description="edges kept per account, the largest by amount; 1 to 50")
]
TopN = Annotated[int, msgspec.Meta(ge=1, le=100, description="how many institutions to rank, 1 to 100")]


def _day_or_time_breaks_rule(value: str | None) -> str | None:
    if value is None or len(value) == 10:
        # a bare day: the calendar is checked by reading it as that day's start
        return None if value is None else time_breaks_rule(value + "T00:00:00+08:00")
    return time_breaks_rule(value)


def _check_times(**given: str | None) -> None:
    for name, value in given.items():
        wrong = _day_or_time_breaks_rule(value)
        if wrong is not None:
            raise ValueError(f"`{name}`: must be {wrong}")


# --- query parameters ----------------------------------------------------------------------------


class InstitutionQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/institutions: every filter given must match; a desk's region is its own."""

    region: AlertRegion | None = None  # a region prefix
    type: InstitutionTypeName | None = None
    q: SearchText | None = None  # part of the name, the institution id or the USCC
    limit: Limit = 500


class AccountQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/accounts: an institution's accounts (a bank sees only its own bank's)."""

    institution_id: Id | None = None
    limit: Limit = 500


class TraceQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/trace: where money leaving ``account_id`` went, hop by hop, in [since, until)."""

    account_id: Id
    since: DayOrTime | None = None  # default: 90 days before ``until``
    until: DayOrTime | None = None  # default: now
    hops: Hops = 3
    fan_out: FanOut = 10
    currency: Currency = "CNY"  # one currency per trace: amounts in two are never added

    def __post_init__(self) -> None:
        _check_times(since=self.since, until=self.until)


class OverviewQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/overview."""

    region: AlertRegion | None = None
    limit: TopN = 10  # institutions ranked by risk index


class ReportQuery(msgspec.Struct, forbid_unknown_fields=False):
    """GET /v1/reports/risk: alerts created in [from, to) of institutions in ``region``."""

    region: AlertRegion | None = None
    from_: DayOrTime | None = msgspec.field(default=None, name="from")  # default: 30 days before `to`
    to: DayOrTime | None = None  # default: now
    format: ReportFormat = "json"

    def __post_init__(self) -> None:
        _check_times(**{"from": self.from_, "to": self.to})


# --- institutions --------------------------------------------------------------------------------


class OpenAlerts(msgspec.Struct):
    """Alerts not yet disposed, in all and by severity."""

    total: int
    low: int
    medium: int
    high: int
    critical: int


class RiskComponent(msgspec.Struct):
    """One named part of the risk index: its weight, its value from 0 to 1, and the points it adds
    to the index (100 x weight x value / the sum of the weights)."""

    name: str
    label_zh: str
    label_en: str
    weight: float
    value: float
    points: float
    inputs: dict[str, Any]  # the figures the value was made of
    explanation: str


class RiskIndex(msgspec.Struct):
    value: float  # 0 to 100
    version: str  # of models/risk_index.toml
    components: list[RiskComponent]
    as_of: str


class InstitutionSummary(msgspec.Struct):
    id: str
    institution_id: str  # the same as id, as reference data names it
    name: str
    type: str
    region: str
    status: str
    risk_index: float
    open_alerts: OpenAlerts
    screening_hits: int  # key-supervision words in the name or business scope (DOMAIN.md)


class InstitutionList(msgspec.Struct):
    institutions: list[InstitutionSummary]
    risk_index_version: str


class RegionLevels(msgspec.Struct):
    province: str  # the first 2 digits of the division code
    city: str  # 4
    county: str  # 6


class Profile(msgspec.Struct):
    institution_id: str
    name: str
    uscc: str
    type: str
    region: str
    region_levels: RegionLevels
    business_scope: str
    licences: list[str]
    status: str


class AccountView(msgspec.Struct):
    account_id: str
    bank_code: str
    institution_id: str | None
    role: str
    holder_name: str  # masked for desks (the last 4 characters kept, DOMAIN.md)
    holder_masked: bool
    product_id: str | None


class AccountList(msgspec.Struct):
    accounts: list[AccountView]


class ProductView(msgspec.Struct):
    product_id: str
    name: str
    declared_annual_yield: str
    underlying_project_rate: str | None
    # declared minus underlying (a positive spread is a return the project cannot pay, 三(四))
    yield_spread: str | None
    term_days: int
    underlying_term_days: int | None
    investor_cap: int | None
    sale_start: str | None
    sale_end: str | None


class RelatedPartyView(msgspec.Struct):
    party_id: str
    name: str
    relation: str
    accounts: list[str]


class DailyFlow(msgspec.Struct):
    """An institution's money in and out on one Beijing day, moves between its own accounts left out."""

    day: str
    currency: str
    inflow: str
    outflow: str
    credits: int
    debits: int


class AlertBrief(msgspec.Struct):
    alert_id: str
    typology: str
    severity: str
    status: str
    disposition: str | None
    assignee: str | None
    amount: str
    window_start: str
    window_end: str
    created_at: str
    updated_at: str


class DossierAlerts(msgspec.Struct):
    open: list[AlertBrief]  # not disposed: open, acknowledged, assigned
    past: list[AlertBrief]  # disposed, with their disposition


class ScreeningHit(msgspec.Struct):
    keyword: str
    field: Literal["name", "business_scope"]


class Screening(msgspec.Struct):
    listed: bool  # on the key-supervision list (三(二))
    hits: list[ScreeningHit]


class Dossier(msgspec.Struct):
    """一户一档: everything FundWatch holds of one institution."""

    profile: Profile
    accounts_by_role: dict[str, list[AccountView]]
    products: list[ProductView]
    related_parties: list[RelatedPartyView]
    daily_flows: list[DailyFlow]  # the last 90 days, oldest first
    alerts: DossierAlerts
    screening: Screening
    risk_index: RiskIndex


# --- trace -----------------------------------------------------------------------------------------


class TraceEdge(msgspec.Struct):
    from_: str = msgspec.field(name="from")
    to: str
    amount: str
    count: int
    first_at: str
    last_at: str
    hop: int  # 1 for the edges out of the account traced from
    closes_cycle: bool  # ``to`` is an account the money already passed through


class TraceNode(msgspec.Struct):
    account_id: str
    hop: int  # 0 for the account traced from
    monitored: bool  # FundWatch holds records of this account, so its money can be followed
    institution_id: str | None
    role: str | None
    terminal: TerminalReason | None  # why the trace stops here; None if it went on
    edges_left_out: int  # outgoing edges beyond the fan-out cap, not followed
    amount_left_out: str


class Trace(msgspec.Struct):
    account_id: str
    currency: str
    since: str
    until: str
    hops: int  # the hops followed (capped)
    hops_requested: int
    fan_out: int
    edges: list[TraceEdge]
    nodes: list[TraceNode]
    notes: list[str]  # what the walk left out and why (English)
    notes_zh: list[str] = []  # the same, in Chinese


# --- overview ------------------------------------------------------------------------------------


class RegionCount(msgspec.Struct):
    region: str
    alerts: int
    open: int
    institutions: int


class RegionLevelCounts(msgspec.Struct):
    province: list[RegionCount]
    city: list[RegionCount]
    county: list[RegionCount]


class TrendDay(msgspec.Struct):
    day: str
    alerts: int  # created that Beijing day
    by_severity: dict[str, int]


class Overview(msgspec.Struct):
    region: str  # the prefix the figures cover ("" for all)
    generated_at: str
    alerts: int
    open_alerts: int
    by_typology: dict[str, int]
    by_severity: dict[str, int]
    by_status: dict[str, int]
    by_region: RegionLevelCounts
    trend: list[TrendDay]  # the last 30 Beijing days, oldest first
    top_institutions: list[InstitutionSummary]
    risk_index_version: str


# --- report --------------------------------------------------------------------------------------


class ReportRow(msgspec.Struct):
    key: str
    label_zh: str
    label_en: str
    alerts: int
    open: int
    disposed: int
    institutions_with_alerts: int
    institutions: int | None  # all institutions of that type or region (None where it means nothing)


class ReportSummary(msgspec.Struct):
    institutions: int
    institutions_with_alerts: int
    alerts: int
    open: int
    disposed: int
    high_or_critical: int


class RiskReport(msgspec.Struct):
    title_zh: str
    title_en: str
    region: str
    from_: str = msgspec.field(name="from")
    to: str
    generated_at: str
    summary: ReportSummary
    by_institution_type: list[ReportRow]
    by_region: list[ReportRow]
    by_typology: list[ReportRow]
    by_disposition: list[ReportRow]
    top_institutions: list[InstitutionSummary]
    risk_index_version: str


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
