"""The risk report and the desk scope rules over a hand-written fake of the desk store (no I/O)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from models.risk_index import load_risk_config
from services.auth import Principal
from services.gateway.desk_reads import DeskReads
from services.gateway.desk_scope import day_or_time, mask_holder, narrowed
from services.gateway.desk_store import AlertRow, InstitutionRow
from services.gateway.errors import ApiError
from services.gateway.risk_report import build_report, to_html, to_xlsx

AT = datetime(2026, 11, 10, tzinfo=UTC)
ADMIN = Principal("t-admin", "admin")
DESK = Principal("t-desk", "desk", region="2201")


def inst(iid: str, region: str, type_: str, name: str = "某公司") -> InstitutionRow:
    return InstitutionRow(iid, region, type_, {"institution_id": iid, "name": name, "status": "active"})


def alert(aid: str, iid: str, region: str, typology: str, severity: str = "high", status: str = "open",
          disposition: str = "") -> AlertRow:  # fmt: skip
    return AlertRow(aid, typology, severity, status, iid, region, disposition, AT)


class FakeStore:
    """The DeskStore methods the report and the ranking use, over lists, filtering as SQL would."""

    def __init__(self, institutions: list[InstitutionRow], alerts: list[AlertRow]) -> None:
        self._institutions = institutions
        self._alerts = alerts
        self.asked: list[str] = []

    async def institutions(self, prefix="", type_=None, ids=None):
        self.asked.append(prefix)
        return [i for i in self._institutions if i.region.startswith(prefix) and (ids is None or i.institution_id in ids)]

    async def alert_rows(self, prefix="", institution_ids=None, created_from=None, created_to=None, typologies=None):
        return [a for a in self._alerts if a.region.startswith(prefix)
                and (created_from is None or a.created_at >= created_from)
                and (created_to is None or a.created_at < created_to)]  # fmt: skip

    async def accounts(self, *args, **kwargs):
        return []

    async def account_inflows(self, *args, **kwargs):
        return []

    async def institution_inflows(self, *args, **kwargs):
        return {}


@pytest.fixture
def reads() -> DeskReads:
    institutions = [inst("A", "220102", "p2p_lending", "<b>甲</b>网络借贷"), inst("B", "220103", "payment"),
                    inst("C", "110105", "p2p_lending")]  # fmt: skip
    alerts = [
        alert("1", "A", "220102", "fund_pool"), alert("2", "A", "220102", "large_value", "low"),
        alert("3", "B", "220103", "misappropriation", "critical", "disposed", "rectify"),
        alert("4", "", "220199", "large_value", "low"),  # an account of no registered institution
        alert("5", "C", "110105", "fund_pool"),
    ]
    return DeskReads(FakeStore(institutions, alerts), load_risk_config(env={}))  # type: ignore[arg-type]


def report_of(reads, principal, **query):
    return asyncio.run(build_report(reads, principal, {"from": "2026-11-01", "to": "2026-12-01", **query}))


def test_the_report_counts_by_type_region_typology_and_disposition(reads):
    report, form = report_of(reads, DESK)
    assert form == "json" and report.region == "2201"
    assert (report.summary.alerts, report.summary.institutions, report.summary.institutions_with_alerts) == (4, 2, 2)
    types = {r.key: r for r in report.by_institution_type}
    assert list(types)[:7] == ["p2p_lending", "equity_crowdfunding", "internet_insurance", "asset_management",
                               "payment", "real_estate", "other"]  # fmt: skip
    assert (types["p2p_lending"].alerts, types["p2p_lending"].institutions) == (2, 1)
    assert (types["payment"].alerts, types["payment"].disposed, types["payment"].institutions) == (1, 1, 1)
    assert (types["unregistered"].alerts, types["unregistered"].label_en) == (1, "Not registered")
    regions = {r.key: r.alerts for r in report.by_region}
    assert regions == {"220102": 2, "220103": 1, "220199": 1}
    typologies = {r.key: r.alerts for r in report.by_typology}
    assert len(typologies) == 12 and (typologies["fund_pool"], typologies["large_value"]) == (1, 2)
    dispositions = {r.key: r.alerts for r in report.by_disposition}
    assert dispositions == {"continue_supervision": 0, "rectify": 1, "close": 0, "refer_judicial": 0,
                            "false_positive": 0, "undisposed": 3}  # fmt: skip
    assert [i.id for i in report.top_institutions][0] in {"A", "B"} and "C" not in {i.id for i in report.top_institutions}


def test_the_period_and_the_region_rules(reads):
    assert report_of(reads, ADMIN, to="2026-11-10")[0].summary.alerts == 0  # [from, to): the 10th is out
    assert report_of(reads, ADMIN)[0].summary.alerts == 5
    assert report_of(reads, DESK, region="22")[0].region == "2201"  # a wider filter narrows to the desk's own
    with pytest.raises(ApiError) as refused:
        report_of(reads, DESK, region="11")
    assert (refused.value.status, refused.value.field) == (404, "region")
    with pytest.raises(ApiError) as refused:
        report_of(reads, Principal("t-bank", "bank", bank_code="B1"))
    assert refused.value.status == 403
    with pytest.raises(ApiError) as refused:
        report_of(reads, ADMIN, format="pdf")
    assert (refused.value.status, refused.value.field) == (422, "format")
    with pytest.raises(ApiError) as refused:
        report_of(reads, ADMIN, to="2026-10-01")
    assert (refused.value.status, refused.value.field) == (422, "from")


def test_the_workbook_holds_the_json_counts(reads):
    report, _ = report_of(reads, ADMIN)
    book = load_workbook(io.BytesIO(to_xlsx(report)))
    for sheet in ("by_institution_type", "by_region", "by_typology", "by_disposition"):
        rows = list(book[sheet].iter_rows(values_only=True))
        assert [dict(zip(rows[0], r, strict=True))["alerts"] for r in rows[2:]] == [
            r.alerts for r in getattr(report, sheet)
        ]
        assert [r[0] for r in rows[2:]] == [r.key for r in getattr(report, sheet)]


def test_the_page_is_self_contained_and_escapes_names(reads):
    page = to_html(report_of(reads, ADMIN)[0])
    assert "&lt;b&gt;甲&lt;/b&gt;" in page and "<b>甲" not in page
    assert "<script" not in page and "<link" not in page and "url(" not in page and "http" not in page


def test_scope_helpers():
    assert narrowed("", None) == "" and narrowed("", "11") == "11"
    assert narrowed("2201", "22") == "2201" and narrowed("22", "220102") == "220102"
    with pytest.raises(ApiError):
        narrowed("2201", "2202")
    assert day_or_time("2026-11-01") == datetime(2026, 10, 31, 16, tzinfo=UTC)
    assert day_or_time("2026-11-01T08:00:00+08:00") == datetime(2026, 11, 1, 0, tzinfo=UTC)
    assert mask_holder("张某某") == "****" and mask_holder("某公司客户资金存管户") == "****金存管户"
