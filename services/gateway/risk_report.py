"""GET /v1/reports/risk: the risk assessment for the leading group (seed plan 四(二)4, 四(四)):
for the alerts created in [from, to) of a region's institutions, counts by institution type,
region, typology and disposition, with how many institutions had any (问题机构数量及占比).

One RiskReport, three forms: JSON; a self-contained printable HTML page (inline CSS, no outside
asset, Chinese first with English); an XLSX workbook (a summary sheet and one sheet per breakdown)
whose counts are the JSON's, cell for cell.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

from openpyxl import Workbook
from openpyxl.styles import Font

from schemas.desk import ReportQuery, ReportRow, ReportSummary, RiskReport
from services.auth import Principal
from services.gateway.desk_reads import DeskReads
from services.gateway.desk_scope import day_or_time, desk_scope, iso, narrowed
from services.gateway.desk_store import AlertRow, InstitutionRow
from services.gateway.errors import ApiError, parse_query

DEFAULT_DAYS = 30
TOP = 10

TYPES = {
    "p2p_lending": ("网络借贷", "P2P lending"), "equity_crowdfunding": ("股权众筹", "Equity crowdfunding"),
    "internet_insurance": ("互联网保险", "Internet insurance"), "asset_management": ("互联网资产管理", "Asset management"),
    "payment": ("第三方支付", "Payment"), "real_estate": ("房地产互联网金融", "Real estate"), "other": ("其他", "Other"),
}  # fmt: skip
TYPOLOGIES = {
    "misappropriation": ("挪用客户资金", "Misappropriation"), "reserve_shortfall": ("备付金缺口", "Reserve shortfall"),
    "commingling": ("资金混同", "Commingling"), "fund_pool": ("设立资金池", "Fund pool"),
    "maturity_mismatch": ("期限错配", "Maturity mismatch"), "excess_return": ("超高收益", "Excess return"),
    "self_financing": ("自融", "Self-financing"), "disguised_clearing": ("变相跨行清算", "Disguised clearing"),
    "investor_cap_breach": ("突破人数限制", "Investor cap breach"), "rapid_growth": ("迅速发展", "Rapid growth"),
    "large_value": ("大额交易", "Large-value transactions"), "anomaly": ("异常", "Anomaly"),
}  # fmt: skip
DISPOSITIONS = {
    "continue_supervision": ("持续监管", "Continued supervision"), "rectify": ("限期整改", "Rectify by a deadline"),
    "close": ("关闭取缔", "Close"), "refer_judicial": ("移送司法", "Referred to judicial organs"),
    "false_positive": ("误报", "False positive"), "undisposed": ("未处置", "Not yet disposed"),
}  # fmt: skip
UNKNOWN = ("未登记", "Not registered")
SHEETS = (("by_institution_type", "按机构类型"), ("by_region", "按地区"), ("by_typology", "按风险类型"),
          ("by_disposition", "按处置方式"))  # fmt: skip
COLUMNS = ("key", "label_zh", "label_en", "alerts", "open", "disposed", "institutions_with_alerts", "institutions")
HEADERS_ZH = ("代码", "名称", "Name", "预警数 Alerts", "未处置 Open", "已处置 Disposed",
              "涉及机构 With alerts", "机构总数 Institutions")  # fmt: skip


async def build_report(reads: DeskReads, principal: Principal, query: Mapping[str, str]) -> tuple[RiskReport, str]:
    """The report and the form asked for."""
    scope = desk_scope(principal, "reports")
    ask = parse_query(query, ReportQuery)
    prefix = narrowed(scope, ask.region)
    now = datetime.now(UTC)
    to = day_or_time(ask.to) if ask.to else now
    start = day_or_time(ask.from_) if ask.from_ else to - timedelta(days=DEFAULT_DAYS)
    if start >= to:
        raise ApiError(422, "invalid_query", "`from`: must be before `to`", "from")
    alerts = await reads.store.alert_rows(prefix, created_from=start, created_to=to)
    institutions = await reads.store.institutions(prefix)
    top = await reads.ranked(prefix, now, TOP)
    type_of = {r.institution_id: r.type for r in institutions}
    region_of = {r.institution_id: r.region for r in institutions}
    report = RiskReport(
        title_zh="互联网金融风险评估报告", title_en="Internet-finance risk assessment", region=prefix,
        from_=iso(start), to=iso(to), generated_at=iso(now), summary=_summary(alerts, institutions),
        by_institution_type=_rows(alerts, institutions, lambda a: type_of.get(a.institution_id, "unregistered"),
                                  lambda r: r.type, TYPES),
        by_region=_rows(alerts, institutions, lambda a: region_of.get(a.institution_id) or a.region or "unregistered",
                        lambda r: r.region, {}),
        by_typology=_rows(alerts, None, lambda a: a.typology, None, TYPOLOGIES),
        by_disposition=_rows(alerts, None, lambda a: a.disposition or "undisposed", None, DISPOSITIONS),
        top_institutions=[a.summary() for a in top], risk_index_version=reads.config.version,
    )  # fmt: skip
    return report, ask.format


def _summary(alerts: list[AlertRow], institutions: list[InstitutionRow]) -> ReportSummary:
    return ReportSummary(
        institutions=len(institutions),
        institutions_with_alerts=len({a.institution_id for a in alerts if a.institution_id}),
        alerts=len(alerts), open=sum(a.status != "disposed" for a in alerts),
        disposed=sum(a.status == "disposed" for a in alerts),
        high_or_critical=sum(a.severity in {"high", "critical"} for a in alerts),
    )  # fmt: skip


def _rows(
    alerts: list[AlertRow],
    institutions: list[InstitutionRow] | None,
    key_of_alert: Callable[[AlertRow], str],
    key_of_institution: Callable[[InstitutionRow], str] | None,
    labels: Mapping[str, tuple[str, str]],
) -> list[ReportRow]:
    """One row per key: every labelled key (zeros included, so sheets keep their shape), and any
    other key that has alerts or institutions."""
    keys = dict.fromkeys(labels)
    counted: dict[str, list[AlertRow]] = {}
    for alert in alerts:
        key = key_of_alert(alert)
        counted.setdefault(key, []).append(alert)
        keys.setdefault(key)
    totals: dict[str, int] = {}
    if institutions is not None and key_of_institution is not None:
        for row in institutions:
            key = key_of_institution(row)
            totals[key] = totals.get(key, 0) + 1
            keys.setdefault(key)
    rows = []
    for key in sorted(keys, key=lambda k: (k not in labels, list(labels).index(k) if k in labels else 0, k)):
        own = counted.get(key, [])
        zh, en = labels.get(key, UNKNOWN if key == "unregistered" else (key, key))
        rows.append(
            ReportRow(
                key=key, label_zh=zh, label_en=en, alerts=len(own), open=sum(a.status != "disposed" for a in own),
                disposed=sum(a.status == "disposed" for a in own),
                institutions_with_alerts=len({a.institution_id for a in own if a.institution_id}),
                institutions=totals.get(key, 0) if institutions is not None else None,
            )
        )  # fmt: skip
    return rows


def filename(report: RiskReport, extension: str) -> str:
    return f"risk-report-{report.region or 'all'}-{report.from_[:10]}-{report.to[:10]}.{extension}"


# --- XLSX ------------------------------------------------------------------------------------------


def to_xlsx(report: RiskReport) -> bytes:
    book = Workbook()
    summary = book.active
    summary.title = "summary"
    assert report.summary is not None
    lines: list[tuple[str, object]] = [
        ("报告 Report", f"{report.title_zh} {report.title_en}"), ("地区 Region", report.region or "全部 all"),
        ("起 From", report.from_), ("止 To", report.to), ("生成时间 Generated", report.generated_at),
        ("风险指数版本 Risk index version", report.risk_index_version),
        ("机构总数 institutions", report.summary.institutions),
        ("涉及预警机构 institutions_with_alerts", report.summary.institutions_with_alerts),
        ("预警数 alerts", report.summary.alerts), ("未处置 open", report.summary.open),
        ("已处置 disposed", report.summary.disposed), ("高及严重 high_or_critical", report.summary.high_or_critical),
    ]  # fmt: skip
    for line in lines:
        summary.append(list(line))
    summary["A1"].font = Font(bold=True)
    for name, _zh in SHEETS:
        sheet = book.create_sheet(name)
        sheet.append(list(COLUMNS))  # the JSON's field names, so a reader can match them
        sheet.append(list(HEADERS_ZH))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in getattr(report, name):
            sheet.append([getattr(row, c) for c in COLUMNS])
    ranked = book.create_sheet("top_institutions")
    ranked.append(["institution_id", "name", "type", "region", "risk_index", "open_alerts"])
    for inst in report.top_institutions:
        ranked.append([inst.institution_id, inst.name, inst.type, inst.region, inst.risk_index, inst.open_alerts.total])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- HTML ------------------------------------------------------------------------------------------

_CSS = """body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;margin:2em;color:#111}
h1{font-size:1.5em;margin:0}h1 small{display:block;font-size:.6em;color:#555;font-weight:normal}
h2{font-size:1.1em;margin-top:1.6em;border-bottom:2px solid #333}table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #999;padding:.25em .5em;text-align:left}td.n{text-align:right}th{background:#eee}
.meta td{border:none;padding:.1em .8em .1em 0}@media print{body{margin:1cm}h2{page-break-after:avoid}
table{page-break-inside:auto}tr{page-break-inside:avoid}}"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_e(v)}</td>' if isinstance(v, int | float) else f"<td>{_e(v)}</td>"
                         for v in row) + "</tr>"  # fmt: skip
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: RiskReport) -> str:
    s = report.summary
    assert s is not None
    meta = _table(("项目 Item", "内容 Value"), [
        ("地区 Region", report.region or "全部 all"), ("统计区间 Period", f"{report.from_} — {report.to}"),
        ("生成时间 Generated", report.generated_at), ("风险指数版本 Risk index version", report.risk_index_version),
        ("机构总数 Institutions", s.institutions), ("涉及预警机构 Institutions with alerts", s.institutions_with_alerts),
        ("预警数 Alerts", s.alerts), ("未处置 Open", s.open), ("已处置 Disposed", s.disposed),
        ("高及严重 High or critical", s.high_or_critical),
    ])  # fmt: skip
    sections = [f"<h2>概况 Summary</h2>{meta}"]
    titles = {"by_institution_type": "Institution type", "by_region": "Region", "by_typology": "Typology",
              "by_disposition": "Disposition"}  # fmt: skip
    for name, zh in SHEETS:
        rows = [[getattr(r, c) if c != "institutions" or r.institutions is not None else "—" for c in COLUMNS]
                for r in getattr(report, name)]  # fmt: skip
        sections.append(f"<h2>{_e(zh)} {_e(titles[name])}</h2>{_table(HEADERS_ZH, rows)}")
    ranked = [(i.institution_id, i.name, TYPES.get(i.type, (i.type,))[0], i.region, i.risk_index, i.open_alerts.total)
              for i in report.top_institutions]  # fmt: skip
    sections.append("<h2>风险指数排名 Risk index ranking</h2>" + _table(
        ("机构 ID", "名称 Name", "类型 Type", "地区 Region", "风险指数 Risk index", "未处置预警 Open alerts"), ranked))
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{_e(report.title_zh)} {_e(report.title_en)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(report.title_zh)}<small>{_e(report.title_en)}</small></h1>"
        + "".join(sections)
        + "<p><small>依据《互联网金融风险专项整治工作实施方案》四(二)4、四(四)。"
        "Prepared for the leading group under 四(二)4 and 四(四) of the plan.</small></p></body></html>"
    )
