"""The desk workspace's reads from outside (CONTRACT.md §2; issue 15 acceptance 2 to 4), on
`fundwatch run --no-simulator`: a chain pushed by two banks, custody account → two intermediate
accounts → final payees, with money going back to the custody account (a cycle); the trace shows
the hops and amounts pushed and ends; dossier, listings, overview and report answer within a
desk's region and 404 outside it; bank tokens get 403; the report's XLSX counts are its JSON's.
"""

from __future__ import annotations

import io
import os
import urllib.request
import uuid
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from openpyxl import load_workbook

from schemas.fields import BEIJING
from tests.support import FundwatchProcess, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.e2e

SFX = uuid.uuid4().hex[:6].upper()
JL, MID, BJ = f"DK-JL-{SFX}", f"DK-MID-{SFX}", f"DK-BJ-{SFX}"
CUST, OWN, M1, M2, BJ_CUST = (f"6217{n}{SFX}" for n in ("0001", "0002", "0003", "0004", "0005"))
P1, P2, P3 = (f"6230{n}{SFX}" for n in ("0001", "0002", "0003"))
DAY = datetime.now(BEIJING).date() - timedelta(days=2)


def institution(inst: str, region: str, name: str, type_: str = "p2p_lending") -> dict:
    return {"institution_id": inst, "name": name, "uscc": "91220101MA14TXQ23K", "type": type_, "region": region,
            "business_scope": "网络借贷信息中介服务", "licences": ["ICP"], "status": "active"}  # fmt: skip


def txn(n: int, account: str, direction: str, amount: str, counterparty: str, hour: int, **extra) -> dict:
    return {"kind": "transaction", "record_id": f"dk-{SFX}-{n}", "account_id": account, "direction": direction,
            "amount": amount, "currency": "CNY", "booked_at": f"{DAY.isoformat()}T{hour:02d}:{n % 60:02d}:00+08:00",
            "counterparty_account": counterparty, "counterparty_bank": "B001", "channel": "IBPS", **extra}  # fmt: skip


# what is pushed: (bank, records). The custody account pays M1 and M2 (one payment without an
# instruction: a misappropriation alert); M1 pays P1 and twice P2; M2 pays P3 and sends some back to
# the custody account. M1's bank pushes the credit leg of the custody payment too: the same money,
# counted once.
PUSHES = {
    "B001": [
        txn(1, CUST, "credit", "900000.00", "6228000000000001", 8),
        txn(2, CUST, "debit", "300000.00", M1, 9, instruction_id=f"INS-{SFX}-1"),
        txn(3, CUST, "debit", "200000.00", M2, 9),
        txn(4, M1, "credit", "300000.00", CUST, 9),
        txn(5, M1, "debit", "120000.00", P1, 10),
        txn(6, M1, "debit", "75000.00", P2, 11),
        txn(7, M1, "debit", "75000.00", P2, 12),
        txn(8, OWN, "credit", "100000.00", "6228000000000002", 8),
    ],
    "B002": [
        txn(20, M2, "credit", "200000.00", CUST, 9),
        txn(21, M2, "debit", "50000.00", P3, 10),
        txn(22, M2, "debit", "20000.00", CUST, 13),
        txn(23, BJ_CUST, "credit", "2500000.00", "6228000000000003", 8),
    ],
}
EXPECTED_EDGES = {
    (CUST, M1): ("300000.00", 1, 1), (CUST, M2): ("200000.00", 1, 1),
    (M1, P1): ("120000.00", 1, 2), (M1, P2): ("150000.00", 2, 2), (M2, P3): ("50000.00", 1, 2),
    (M2, CUST): ("20000.00", 1, 2),
}  # fmt: skip


class World:
    def __init__(self, root) -> None:
        self.root = root
        self.base = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env["FUNDWATCH_LOG_LEVEL"] = os.environ.get("FW_TEST_LOG_LEVEL", "INFO")
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", self.base.rsplit(":", 1)[1]],
            env, root / "run.log",
        )  # fmt: skip
        self.tokens: dict[str, str] = {}

    @property
    def admin(self) -> str:
        return (self.root / "admin-token").read_text().strip()

    def get(self, path: str, who: str = "admin") -> tuple[int, object]:
        return call("GET", self.base + path, self.admin if who == "admin" else self.tokens[who])

    def ok(self, path: str, who: str = "admin") -> dict:
        status, answer = self.get(path, who)
        assert status == 200, (path, who, answer)
        return answer  # type: ignore[return-value]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("desk"))
    try:
        w.process.start()
        wait_ready(w.base, timeout=120, process=w.process.process)
        for name, body in {"bank B001": {"role": "bank", "bank_code": "B001"},
                           "bank B002": {"role": "bank", "bank_code": "B002"},
                           "desk 2201": {"role": "desk", "region": "2201"},
                           "desk 11": {"role": "desk", "region": "11"}}.items():  # fmt: skip
            status, answer = call("POST", f"{w.base}/v1/admin/tokens", w.admin, body)
            assert status == 201, answer
            w.tokens[name] = answer["token"]
        reference = {
            "institutions": [institution(JL, "220102", "长春某网络借贷信息中介有限公司"),
                             institution(MID, "220103", "长春某贸易有限公司", "other"),
                             institution(BJ, "110105", "北京某网络借贷信息中介有限公司")],
            "accounts": [
                {"account_id": CUST, "bank_code": "B001", "institution_id": JL, "role": "customer_custody",
                 "holder_name": "长春某网络借贷信息中介有限公司客户资金存管户"},
                {"account_id": OWN, "bank_code": "B001", "institution_id": JL, "role": "own_operating",
                 "holder_name": "长春某网络借贷信息中介有限公司"},
                {"account_id": M1, "bank_code": "B001", "institution_id": MID, "role": "own_operating",
                 "holder_name": "长春某贸易有限公司"},
                {"account_id": M2, "bank_code": "B002", "institution_id": MID, "role": "other",
                 "holder_name": "张某某"},
                {"account_id": BJ_CUST, "bank_code": "B002", "institution_id": BJ, "role": "customer_custody",
                 "holder_name": "北京某网络借贷信息中介有限公司客户资金存管户"},
            ],
            "products": [{"product_id": f"DK-PRD-{SFX}", "institution_id": JL, "name": "稳健一号",
                          "declared_annual_yield": "0.12", "term_days": 90, "underlying_project_rate": "0.09",
                          "underlying_term_days": 360}],
            "related-parties": [{"party_id": f"DK-P-{SFX}", "institution_id": JL, "name": "王某某",
                                 "relation": "actual_controller", "accounts": [M2]}],
        }  # fmt: skip
        for kind, items in reference.items():
            status, answer = call("PUT", f"{w.base}/v1/reference/{kind}", w.admin, items)
            assert status == 200 and answer["upserted"] == len(items), answer
        for bank, records in PUSHES.items():
            status, answer = call("POST", f"{w.base}/v1/batches", w.tokens[f"bank {bank}"],
                                  {"batch_id": f"dk-{SFX}-{bank}", "bank_code": bank, "records": records})  # fmt: skip
            assert status == 202 and answer["accepted"] == len(records), answer

        def settled() -> bool:
            alerts = w.ok(f"/v1/alerts?institution_id={JL}")["alerts"]
            trace = w.ok(f"/v1/trace?account_id={CUST}")
            flows = w.ok(f"/v1/institutions/{JL}")["daily_flows"]
            return (any(a["typology"] == "misappropriation" for a in alerts) and len(trace["edges"]) == 6
                    and bool(flows))  # fmt: skip

        wait_until(settled, 90, interval=1, what="the records processed and the alert raised")
        yield w
        w.process.stop()
    finally:
        w.process.kill()


def test_the_trace_follows_the_chain_hop_by_hop_with_the_amounts_pushed(world):
    trace = world.ok(f"/v1/trace?account_id={CUST}&hops=3")
    edges = {(e["from"], e["to"]): (e["amount"], e["count"], e["hop"]) for e in trace["edges"]}
    assert edges == EXPECTED_EDGES
    nodes = {n["account_id"]: n for n in trace["nodes"]}
    assert {a: nodes[a]["hop"] for a in (CUST, M1, M2, P1, P2, P3)} == {CUST: 0, M1: 1, M2: 1, P1: 2, P2: 2, P3: 2}
    assert {a: nodes[a]["terminal"] for a in (P1, P2, P3)} == dict.fromkeys((P1, P2, P3), "not_monitored")
    assert nodes[M1]["monitored"] and nodes[M1]["institution_id"] == MID and not nodes[P1]["monitored"]
    # the money that went back to the custody account ends the walk there
    back = next(e for e in trace["edges"] if e["to"] == CUST)
    assert back["closes_cycle"] and back["hop"] == 2 and trace["hops"] == 3
    p2 = next(e for e in trace["edges"] if e["to"] == P2)
    assert p2["first_at"] < p2["last_at"] and p2["first_at"].endswith("Z")


def test_the_trace_caps_hops_and_fan_out_and_says_so(world):
    trace = world.ok(f"/v1/trace?account_id={CUST}&hops=50&fan_out=1")
    assert (trace["hops"], trace["hops_requested"]) == (6, 50)
    assert any("capped at 6" in n for n in trace["notes"])
    assert len(trace["notes_zh"]) == len(trace["notes"]) and any("最多追踪 6 层" in n for n in trace["notes_zh"])
    assert {(e["from"], e["to"]) for e in trace["edges"]} == {(CUST, M1), (M1, P2)}
    root = next(n for n in trace["nodes"] if n["account_id"] == CUST)
    assert (root["edges_left_out"], root["amount_left_out"]) == (1, "200000.00")
    assert world.ok(f"/v1/trace?account_id={CUST}&hops=1")["edges"] == [
        e for e in world.ok(f"/v1/trace?account_id={CUST}")["edges"] if e["hop"] == 1
    ]
    status, answer = world.get(f"/v1/trace?account_id={CUST}&since=2026-13-01")
    assert status == 422 and answer["error"]["field"] == "since"
    status, answer = world.get("/v1/trace")
    assert status == 422 and answer["error"]["field"] == "account_id"


def test_trace_scope(world):
    assert {(e["from"], e["to"]) for e in world.ok(f"/v1/trace?account_id={CUST}", "desk 2201")["edges"]} == set(
        EXPECTED_EDGES
    )
    for who, want in (("desk 11", 404), ("bank B001", 403)):
        assert world.get(f"/v1/trace?account_id={CUST}", who)[0] == want, who
    assert world.get("/v1/trace?account_id=nobody-at-all")[0] == 404
    # a Beijing desk traces its own account; nothing leaves it
    assert world.ok(f"/v1/trace?account_id={BJ_CUST}", "desk 11")["edges"] == []


def test_the_dossier_within_the_region_and_not_outside(world):
    dossier = world.ok(f"/v1/institutions/{JL}", "desk 2201")
    assert dossier["profile"]["region_levels"] == {"province": "22", "city": "2201", "county": "220102"}
    roles = dossier["accounts_by_role"]
    assert [a["account_id"] for a in roles["customer_custody"]] == [CUST]
    assert roles["customer_custody"][0]["holder_masked"] and roles["customer_custody"][0]["holder_name"] == "****金存管户"
    assert dossier["products"][0]["yield_spread"] == "0.03"
    assert dossier["related_parties"][0]["accounts"] == [M2]
    assert {f["day"] for f in dossier["daily_flows"]} == {DAY.isoformat()}
    assert any(a["typology"] == "misappropriation" for a in dossier["alerts"]["open"])
    assert dossier["screening"]["listed"] and {"keyword": "网络借贷", "field": "name"} in dossier["screening"]["hits"]
    index = dossier["risk_index"]
    assert [c["name"] for c in index["components"]] == ["open_alerts", "custody_coverage", "growth", "history",
                                                        "screening"]  # fmt: skip
    assert index["value"] == pytest.approx(sum(c["points"] for c in index["components"]), abs=0.1)
    assert index["value"] > 0 and index["version"]
    # 900,000 into custody and 100,000 into the own account
    coverage = next(c for c in index["components"] if c["name"] == "custody_coverage")
    assert coverage["inputs"]["coverage"] == pytest.approx(0.9)
    assert world.ok(f"/v1/institutions/{JL}")["accounts_by_role"]["customer_custody"][0]["holder_masked"] is False
    for who, want in (("desk 11", 404), ("bank B001", 403)):
        assert world.get(f"/v1/institutions/{JL}", who)[0] == want, who
    assert world.get(f"/v1/institutions/nobody-{SFX}")[0] == 404


def test_listings_within_the_region(world):
    listed = world.ok("/v1/institutions", "desk 2201")["institutions"]
    assert {i["id"] for i in listed} >= {JL, MID} and BJ not in {i["id"] for i in listed}
    assert all(i["region"].startswith("2201") for i in listed)
    jl = next(i for i in listed if i["id"] == JL)
    assert jl["open_alerts"]["total"] >= 1 and jl["risk_index"] > 0
    assert [i["id"] for i in world.ok(f"/v1/institutions?region=22&q={quote('贸易')}", "desk 2201")["institutions"]] == [MID]
    assert [i["id"] for i in world.ok(f"/v1/institutions?type=other&q={SFX}")["institutions"]] == [MID]
    assert world.get("/v1/institutions?region=11", "desk 2201")[0] == 404
    assert world.get("/v1/institutions?type=bank")[0] == 422
    assert world.get("/v1/institutions", "bank B001")[0] == 403
    # accounts: desks masked and in region; banks their own bank's only
    accounts = world.ok(f"/v1/accounts?institution_id={JL}", "desk 2201")["accounts"]
    assert {a["account_id"] for a in accounts} == {CUST, OWN} and all(a["holder_masked"] for a in accounts)
    assert world.get(f"/v1/accounts?institution_id={JL}", "desk 11")[0] == 404
    own = world.ok("/v1/accounts", "bank B002")["accounts"]
    assert {a["account_id"] for a in own} >= {M2, BJ_CUST} and {a["bank_code"] for a in own} == {"B002"}
    assert {a["account_id"] for a in world.ok(f"/v1/accounts?institution_id={MID}", "bank B001")["accounts"]} == {M1}


def test_the_overview_within_the_region(world):
    overview = world.ok("/v1/overview", "desk 2201")
    assert overview["region"] == "2201"
    assert [r["region"] for r in overview["by_region"]["province"]] == ["22"]
    assert {r["region"] for r in overview["by_region"]["county"]} >= {"220102"}
    assert all(r["region"].startswith("2201") for r in overview["by_region"]["city"])
    assert len(overview["trend"]) == 30 and overview["trend"][-1]["day"] == datetime.now(BEIJING).date().isoformat()
    assert sum(d["alerts"] for d in overview["trend"]) >= 1
    assert overview["by_typology"].get("misappropriation", 0) >= 1
    assert sum(overview["by_severity"].values()) == overview["alerts"] == sum(overview["by_status"].values())
    assert overview["top_institutions"][0]["id"] == JL
    beijing = world.ok("/v1/overview", "desk 11")
    assert all(i["region"].startswith("11") for i in beijing["top_institutions"])
    assert world.get("/v1/overview?region=22", "desk 11")[0] == 404
    assert world.get("/v1/overview", "bank B001")[0] == 403


def _raw(world, path: str, who: str = "admin"):
    token = world.admin if who == "admin" else world.tokens[who]
    request = urllib.request.Request(world.base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers, response.read()


def test_the_report_in_json_html_and_xlsx_with_the_same_counts(world):
    span = f"from={(DAY - timedelta(days=1)).isoformat()}&to={(DAY + timedelta(days=5)).isoformat()}"
    report = world.ok(f"/v1/reports/risk?region=2201&{span}", "desk 2201")
    assert report["region"] == "2201" and report["summary"]["alerts"] >= 1
    types = {r["key"]: r for r in report["by_institution_type"]}
    assert types["p2p_lending"]["alerts"] >= 1 and types["p2p_lending"]["institutions"] >= 1
    assert sum(r["alerts"] for r in report["by_disposition"]) == report["summary"]["alerts"]
    assert sum(r["alerts"] for r in report["by_typology"]) == report["summary"]["alerts"]

    headers, body = _raw(world, f"/v1/reports/risk?region=2201&{span}&format=xlsx", "desk 2201")
    assert headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert headers["Content-Disposition"].startswith("attachment;") and ".xlsx" in headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(body))
    assert {"summary", "by_institution_type", "by_region", "by_typology", "by_disposition"} <= set(book.sheetnames)
    for sheet in ("by_institution_type", "by_region", "by_typology", "by_disposition"):
        rows = list(book[sheet].iter_rows(values_only=True))
        names = rows[0]
        read = [dict(zip(names, row, strict=True)) for row in rows[2:]]
        want = [{k: r[k] for k in names} for r in report[sheet]]
        assert read == want, sheet
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True)}
    assert summary["预警数 alerts"] == report["summary"]["alerts"]

    headers, body = _raw(world, f"/v1/reports/risk?region=2201&{span}&format=html", "desk 2201")
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode("utf-8")
    assert "互联网金融风险评估报告" in page and "Internet-finance risk assessment" in page
    assert "<style>" in page and "<script" not in page and "<link" not in page and "http" not in page
    assert page.index("互联网金融风险评估报告") < page.index("Internet-finance risk assessment")

    for who, path, want in (("desk 11", f"/v1/reports/risk?region=2201&{span}", 404),
                            ("bank B001", "/v1/reports/risk", 403)):  # fmt: skip
        assert world.get(path, who)[0] == want, who
    beijing = world.ok(f"/v1/reports/risk?{span}", "desk 11")
    assert beijing["region"] == "11" and all(r["key"].startswith("11") for r in beijing["by_region"])
    status, answer = world.get(f"/v1/reports/risk?from={DAY.isoformat()}&to={DAY.isoformat()}")
    assert status == 422 and answer["error"]["field"] == "from"
