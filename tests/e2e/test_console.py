"""The desk console (CONTRACT.md §2 `GET /`) in a real browser: Debian's Chromium driven by
Playwright against `fundwatch run --no-simulator`, fed through the API with two institutions in
two regions and a chain of payments to trace.

A desk of region 2201 signs in, sees its region's alerts and none of region 11's (by
`data-alert-id`), watches a new alert arrive without reloading, acts on alerts from the detail page
and in bulk, opens "next unassigned", a dossier, a trace (graph and table) and the risk report,
whose XLSX it downloads, and a replay saved by `fundwatch replay --save` over the stack's own
records (its region's rows only). Every request the page makes stays on FundWatch's origin, and no
page shows a console error or an uncaught script error.

With FW_CONSOLE_SCREENSHOTS=<folder> (docs/console for the README), each page is also saved as a
PNG there; Chinese text needs a CJK font on the machine (Debian's fonts-wqy-microhei, say).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from models.thresholds import DEFAULT_FILE, load_thresholds
from schemas.fields import BEIJING
from tests.support import REPO, FundwatchProcess, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
SCREENSHOTS = os.environ.get("FW_CONSOLE_SCREENSHOTS", "")

SUFFIX = uuid.uuid4().hex[:6].upper()
DAY = datetime.now(BEIJING).date() - timedelta(days=2)
MONTH = DAY.strftime("%Y-%m")
INST_A = f"CC-P2P-{SUFFIX}"
INST_Z = f"CC-AM-{SUFFIX}"
CUSTODY_A, OWN_A, MID_B, MID_C = (f"62170{SUFFIX}{n:05d}" for n in (1, 2, 3, 4))
CUSTODY_Z = f"62170{SUFFIX}00009"
FINAL_1, FINAL_2 = "6230000000000001", "6230000000000002"
# the money out of CUSTODY_A, hop by hop: what the trace must show
CHAIN = [
    (1, CUSTODY_A, OWN_A, "1200000.00"),
    (2, OWN_A, MID_B, "700000.00"),
    (2, OWN_A, MID_C, "500000.00"),
    (3, MID_B, FINAL_1, "400000.00"),
    (3, MID_B, FINAL_2, "300000.00"),
]


def institution(institution_id: str, name: str, kind: str, region: str, scope: str) -> dict:
    return {
        "institution_id": institution_id, "name": name, "uscc": "91220101MA14TXQ23K", "type": kind,
        "region": region, "business_scope": scope, "licences": ["ICP"], "status": "active",
    }  # fmt: skip


def account(account_id: str, institution_id: str, role: str, holder: str) -> dict:
    return {"account_id": account_id, "bank_code": "B001", "institution_id": institution_id, "role": role,
            "holder_name": holder}  # fmt: skip


def move(n: int, account_id: str, direction: str, amount: str, counterparty: str, day=DAY, **extra) -> dict:
    return {
        "kind": "transaction", "record_id": f"cc-{SUFFIX}-{n}", "account_id": account_id, "direction": direction,
        "amount": amount, "currency": "CNY", "booked_at": f"{day.isoformat()}T{9 + n // 60:02d}:{n % 60:02d}:00+08:00",
        "counterparty_account": counterparty, "counterparty_bank": "B777", "channel": "HVPS", **extra,
    }  # fmt: skip


class Stack:
    """`fundwatch run --no-simulator` on a free port, with the reference data and records above."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = f"http://127.0.0.1:{free_port()}"
        self.admin = f"fw_admin_console_{uuid.uuid4().hex}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env.update(FUNDWATCH_ADMIN_TOKEN=self.admin, FUNDWATCH_LOG_LEVEL="INFO")
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", self.base.rsplit(":", 1)[1]],
            env,
            root / "run.log",
        )
        self.tokens: dict[str, str] = {}
        self.batches = 0

    def token(self, name: str, body: dict) -> str:
        status, answer = call("POST", f"{self.base}/v1/admin/tokens", self.admin, body)
        assert status == 201, answer
        self.tokens[name] = answer["token"]
        return answer["token"]

    def api(self, path: str, token: str | None = None) -> dict:
        status, answer = call("GET", f"{self.base}{path}", token or self.admin)
        assert status == 200, (path, answer)
        return answer

    def push(self, *records: dict) -> None:
        self.batches += 1
        body = {"batch_id": f"cc-{SUFFIX}-{self.batches}", "bank_code": "B001", "records": list(records)}
        status, answer = call("POST", f"{self.base}/v1/batches", self.tokens["bank"], body)
        assert status == 202 and answer["accepted"] == len(records), answer

    def alerts(self, institution_id: str) -> list[dict]:
        return self.api(f"/v1/alerts?institution_id={institution_id}&limit=1000")["alerts"]

    def start(self) -> None:
        self.process.start()
        wait_ready(self.base, timeout=120, process=self.process.process)
        self.token("bank", {"role": "bank", "bank_code": "B001"})
        self.token("desk", {"role": "desk", "region": "2201"})
        reference = {
            "institutions": [
                institution(
                    INST_A, "长春某网络借贷信息中介有限公司", "p2p_lending", "220102", "网络借贷信息中介服务"
                ),
                institution(INST_Z, "北京某资产管理有限公司", "asset_management", "110105", "资产管理"),
            ],
            "accounts": [
                account(CUSTODY_A, INST_A, "customer_custody", "客户资金存管户"),
                account(OWN_A, INST_A, "own_operating", "长春某网络借贷信息中介有限公司"),
                account(MID_B, INST_A, "related_party", "张某某"),
                account(MID_C, INST_A, "other", "长春某商贸有限公司"),
                account(CUSTODY_Z, INST_Z, "customer_custody", "客户资金存管户"),
            ],
        }
        for kind, items in reference.items():
            status, answer = call("PUT", f"{self.base}/v1/reference/{kind}", self.admin, items)
            assert status == 200 and answer["upserted"] == len(items), answer
        self.push(
            move(1, CUSTODY_A, "credit", "3000000.00", "6228000000000011"),
            move(2, CUSTODY_Z, "credit", "2500000.00", "6228000000000012"),
            *(
                move(10 + i, payer, "debit", amount, payee)
                for i, (_, payer, payee, amount) in enumerate(CHAIN)
            ),
        )
        wait_until(lambda: {"large_value", "misappropriation"} <= {a["typology"] for a in self.alerts(INST_A)},
                   90, interval=0.5, what="the large-value and misappropriation alerts of region 2201")  # fmt: skip
        wait_until(lambda: self.alerts(INST_Z), 60, interval=0.5, what="the alert of region 11")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("console"))
    try:
        running.start()
        yield running
        running.process.stop()
    finally:
        running.process.kill()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing: `make test-deps` installs Debian's chromium")
        pytest.skip("/usr/bin/chromium is missing (Debian's chromium; `make test-deps` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Tab:
    """One browser page on the console, with every request, console error and page error noted."""

    def __init__(self, browser, stack: Stack) -> None:
        self.stack = stack
        self.context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True,
                                           locale="zh-CN")  # fmt: skip
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.allowed: list[str] = []  # patterns of console errors a test expects
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def sign_in(self, token: str) -> None:
        self.page.goto(self.stack.base + "/")
        self.page.fill('input[name="token"]', token)
        self.page.click('form.signin button[type="submit"]')
        self.page.wait_for_selector("table.queue tbody tr[data-alert-id]")

    def go(self, route: str) -> None:
        self.page.goto(f"{self.stack.base}/#/{route}")

    def shot(self, name: str, full_page: bool = False) -> None:
        if SCREENSHOTS:
            self.page.evaluate("() => window.scrollTo(0, 0)")
            self.page.wait_for_timeout(600)  # charts finish drawing
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=full_page)

    def close(self) -> None:
        origin = urlsplit(self.stack.base)
        outside = []
        for url in self.requests:
            parts = urlsplit(url[len("blob:") :] if url.startswith("blob:") else url)
            if url.startswith("data:"):
                continue
            if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
                outside.append(url)
        errors = [e for e in self.errors if not any(re.search(p, e) for p in self.allowed)]
        self.context.close()
        assert not outside, f"requests left FundWatch's origin: {outside}"
        assert not errors, f"the page reported errors: {errors}"


@pytest.fixture
def tab(browser, stack):
    opened = Tab(browser, stack)
    yield opened
    opened.close()


def listed_ids(tab: Tab) -> set[str]:
    return set(tab.page.eval_on_selector_all("tr[data-alert-id]", "rows => rows.map(r => r.dataset.alertId)"))


def test_a_desk_signs_in_and_sees_its_region_only_with_live_updates(tab: Tab, stack: Stack) -> None:
    page = tab.page
    page.goto(stack.base + "/")
    assert page.locator('input[name="token"]').is_visible()
    assert page.locator("#nav a").count() == 0  # nothing but the sign-in before a token
    tab.shot("signin")
    tab.sign_in(stack.tokens["desk"])
    assert "2201" in page.locator("#who").inner_text()  # the header says whose region this is
    region_a = {a["alert_id"] for a in stack.alerts(INST_A)}
    region_z = {a["alert_id"] for a in stack.alerts(INST_Z)}
    wait_until(lambda: region_a <= listed_ids(tab), 15, what="region 2201's alerts in the queue")
    shown = listed_ids(tab)
    assert not shown & region_z, "an alert of region 11 is in a 2201 desk's queue"
    everything = {a["alert_id"]: a["region"] for a in stack.api("/v1/alerts?limit=1000")["alerts"]}
    assert all(everything[i].startswith("2201") for i in shown)
    # the token is kept in this tab's session, never in a URL
    token = stack.tokens["desk"]
    assert page.evaluate("() => sessionStorage.getItem('fundwatch.token')") == token
    assert not [u for u in tab.requests if token in u] and token not in page.url
    # a new alert appears without a reload (the queue polls)
    later = DAY - timedelta(days=1)
    stack.push(move(40, CUSTODY_A, "credit", "2600000.00", "6228000000000013", day=later))
    new = wait_until(lambda: {a["alert_id"] for a in stack.alerts(INST_A)} - region_a, 60, interval=0.5,
                     what="the new large-value alert")  # fmt: skip
    wait_until(lambda: new <= listed_ids(tab), 20, what="the new alert in the open queue")
    tab.shot("queue")


def test_a_desk_acknowledges_then_disposes_from_the_detail_page(tab: Tab, stack: Stack) -> None:
    alert = next(a for a in stack.alerts(INST_A) if a["typology"] == "misappropriation")
    tab.sign_in(stack.tokens["desk"])
    page = tab.page
    page.click(f'tr[data-alert-id="{alert["alert_id"]}"] a.open-alert')
    page.wait_for_selector('[data-status="open"] button[data-action="acknowledge"]')
    assert page.locator(".explanation").first.inner_text().strip()
    assert page.locator("table.metrics tbody tr").count() > 0
    page.click('button[data-action="acknowledge"]')
    page.wait_for_selector('[data-status="acknowledged"]')
    page.select_option('select[name="disposition"]', "rectify")
    page.fill('textarea[name="note"]', "限期30日整改")
    page.click('button[data-action="dispose"]')
    page.wait_for_selector('[data-status="disposed"]')
    rows = page.locator("table.audit tbody tr")
    assert rows.count() == 2
    assert "限期30日整改" in rows.nth(1).inner_text()
    page.wait_for_selector(".chart canvas")  # the daily flows of the alert's account
    tab.shot("alert", full_page=True)
    answer = stack.api(f"/v1/alerts/{alert['alert_id']}", stack.tokens["desk"])
    assert (answer["status"], answer["disposition"]) == ("disposed", "rectify")
    assert [a["action"] for a in answer["actions"]] == ["acknowledge", "dispose"]


def test_bulk_assign_and_next_unassigned(tab: Tab, stack: Stack) -> None:
    tab.sign_in(stack.tokens["desk"])
    page = tab.page
    waiting = sorted((a for a in stack.alerts(INST_A) if a["status"] == "open" and not a.get("assignee")),
                     key=lambda a: a["created_at"])  # fmt: skip
    assert len(waiting) >= 2, waiting
    chosen = waiting[0]["alert_id"]
    page.check(f'tr[data-alert-id="{chosen}"] input.pick')
    page.fill('input[name="assignee"]', "officer-li")
    page.click("#bulk-assign")
    page.wait_for_selector(".message .notice.ok")
    answer = stack.api(f"/v1/alerts/{chosen}", stack.tokens["desk"])
    assert (answer["status"], answer["assignee"]) == ("assigned", "officer-li")
    # the oldest open alert nobody has taken is now the next of the list
    expected = sorted((a for a in stack.alerts(INST_A) if a["status"] == "open" and not a.get("assignee")),
                      key=lambda a: a["created_at"])[0]["alert_id"]  # fmt: skip
    page.click("#next-unassigned")
    page.wait_for_url(re.compile(r"#/alert/"))
    assert page.url.endswith(f"#/alert/{expected}")
    page.wait_for_selector('[data-status="open"]')


def test_the_language_switch_is_remembered(tab: Tab, stack: Stack) -> None:
    tab.sign_in(stack.tokens["desk"])
    page = tab.page
    assert page.locator("#nav").inner_text().find("预警队列") >= 0
    page.click("#lang")
    page.wait_for_selector("#nav >> text=Alert queue")
    page.reload()
    page.wait_for_selector("#nav >> text=Alert queue")
    assert page.evaluate("() => document.documentElement.lang") == "en"
    page.click("#lang")
    page.wait_for_selector("#nav >> text=预警队列")


def test_sign_out_and_a_refused_token_go_back_to_sign_in(tab: Tab, stack: Stack) -> None:
    tab.allowed.append(r"status of 401")  # the browser notes the refused call itself
    tab.sign_in(stack.tokens["desk"])
    page = tab.page
    page.click("#signout")
    page.wait_for_selector('input[name="token"]')
    assert page.evaluate("() => sessionStorage.getItem('fundwatch.token')") is None
    # a token the server no longer takes: the first call's 401 sends the page to sign-in
    page.evaluate("() => sessionStorage.setItem('fundwatch.token', 'fw_desk_not_a_token')")
    tab.go("queue")
    page.wait_for_selector('input[name="token"]')
    assert page.url.endswith("#/signin")
    # a bank token reads no alerts: the sign-in says so and keeps no token
    tab.allowed.append(r"status of 403")
    page.fill('input[name="token"]', stack.tokens["bank"])
    page.click('form.signin button[type="submit"]')
    page.wait_for_selector("form.signin .notice.error")
    assert page.evaluate("() => sessionStorage.getItem('fundwatch.token')") is None


def test_without_echarts_the_pages_show_their_tables(tab: Tab, stack: Stack) -> None:
    """The page as the server sends it when ECharts is not installed (data-charts="off")."""
    page = tab.page

    def without_charts(route) -> None:
        response = route.fetch()
        route.fulfill(
            response=response, body=response.text().replace('data-charts="on"', 'data-charts="off"')
        )

    page.route(f"{stack.base}/", without_charts)
    tab.sign_in(stack.tokens["desk"])
    tab.go("overview")
    page.wait_for_selector(".page-overview table.ranking")
    page.wait_for_selector(".page-overview p.muted >> text=图表组件不可用")
    assert page.locator(".page-overview table.trend").is_visible()  # the trend as a table instead
    assert page.locator("canvas").count() == 0
    assert not [u for u in tab.requests if "echarts" in u]


def test_a_desk_opens_a_dossier(tab: Tab, stack: Stack) -> None:
    tab.sign_in(stack.tokens["desk"])
    page = tab.page
    page.click(f'table.queue a[href="#/institution/{INST_A}"] >> nth=0')
    page.wait_for_selector(".page-institution h1")
    text = page.locator(".page-institution").inner_text()
    assert "长春某网络借贷信息中介有限公司" in text
    assert page.locator("table.components tbody tr").count() > 0  # the risk index's components
    assert page.locator(".page-institution tr[data-alert-id]").count() >= 2
    page.wait_for_selector(".page-institution .chart canvas")  # 90 days in and out
    tab.shot("dossier", full_page=True)
    tab.go("institutions")
    page.wait_for_selector("table.ranking a.dossier-link")
    names = page.locator("table.ranking").inner_text()
    assert INST_A in names and INST_Z not in names
    tab.go("overview")
    page.wait_for_selector(".page-overview table.ranking")
    page.wait_for_selector(".page-overview .chart canvas")  # the 30-day trend
    tab.shot("overview")


def test_a_desk_runs_a_trace_and_sees_the_graph_and_the_table(tab: Tab, stack: Stack) -> None:
    tab.sign_in(stack.tokens["desk"])
    page = tab.page
    tab.go("trace")
    page.fill('input[name="account"]', CUSTODY_A)
    page.fill('input[name="since"]', (DAY - timedelta(days=5)).isoformat())
    page.fill('input[name="hops"]', "3")
    page.click("form.trace-form button[type=submit]")
    page.wait_for_selector("table.trace-table tbody tr")
    page.wait_for_selector(".chart.graph canvas")
    rows = page.eval_on_selector_all(
        "table.trace-table tbody tr",
        "rows => rows.map(r => [...r.cells].slice(0, 4).map(c => c.textContent))",
    )
    got = {
        (int(hop), payer, payee.rstrip(" ↺"), amount.replace(",", "")) for hop, payer, payee, amount in rows
    }
    assert {(hop, payer, payee, amount) for hop, payer, payee, amount in CHAIN} <= got
    assert page.locator("table.trace-nodes tbody tr").count() == len({CUSTODY_A} | {c[2] for c in CHAIN})
    tab.shot("trace")


def test_a_desk_opens_the_report_and_downloads_the_xlsx(tab: Tab, stack: Stack, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    tab.sign_in(stack.tokens["desk"])
    page = tab.page
    tab.go(f"report?month={MONTH}")
    page.wait_for_selector("article.report table.report-table")
    assert "@media print" in page.evaluate(
        "() => [...document.styleSheets].flatMap(s => [...s.cssRules]).map(r => r.cssText).join(' ')"
    )
    tab.shot("report")
    # the printed page is the report alone, without the console around it
    page.emulate_media(media="print")
    assert page.locator("header.top").is_hidden() and page.locator("#export-xlsx").is_hidden()
    assert page.locator("article.report table.report-table").first.is_visible()
    page.emulate_media(media="screen")
    with page.expect_download() as download:
        page.click("#export-xlsx")
    saved = tmp_path / "report.xlsx"
    download.value.save_as(saved)
    assert download.value.suggested_filename.endswith(".xlsx")
    book = load_workbook(saved, read_only=True)
    cells = [
        str(c) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for c in row if c
    ]
    assert cells, "an empty workbook"
    # the token went as a header, never in the download's URL
    assert not [u for u in tab.requests if stack.tokens["desk"] in u]


@pytest.fixture(scope="module")
def saved_replay(stack: Stack, tmp_path_factory) -> str:
    """`fundwatch replay --save` over the stack's own records with the large-value line for
    companies lowered from 2,000,000 to 500,000: the chain's payments of region 2201 are gained,
    region 11's report stays. A chDB directory opens in one process only, so the stack stops for
    the replay and starts again on the same data (tokens and alerts are kept there)."""
    text = DEFAULT_FILE.read_text("utf-8").replace(
        'non_natural_transfer = "2000000.00"', 'non_natural_transfer = "500000.00"'
    )
    version = load_thresholds(path=DEFAULT_FILE).version
    lowered = tmp_path_factory.mktemp("replay") / "lowered.toml"
    lowered.write_text(text.replace(f'version = "{version}"', f'version = "{version}-console"', 1), "utf-8")
    stack.process.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
    since, until = (DAY - timedelta(days=5)).isoformat(), (DAY + timedelta(days=5)).isoformat()
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "replay", "--from", since, "--until", until, "--thresholds",
         str(lowered), "--data-dir", str(stack.root), "--save"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    stack.process.start()
    wait_ready(stack.base, timeout=120, process=stack.process.process)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("Saved as replay ", 1)[1].split()[0]


def test_a_desk_reads_a_saved_replay_of_its_region(tab: Tab, stack: Stack, saved_replay: str) -> None:
    desk = stack.tokens["desk"]
    mine = stack.api(f"/v1/replays/{saved_replay}", desk)
    everything = stack.api(f"/v1/replays/{saved_replay}")
    assert mine["gained"] and {a["region"] for a in mine["gained"]} == {"220102"}
    assert "110105" in {g["name"] for g in everything["by_region"]}  # the admin's view holds region 11
    tab.sign_in(desk)
    page = tab.page
    page.click('#nav a[href="#/replays"]')
    page.click(f'table.replays tr[data-replay-id="{saved_replay}"] a.replay-link')
    page.wait_for_selector('table.replay-groups[data-by="typology"] tbody tr')
    cells = page.eval_on_selector(
        'table.replay-groups[data-by="typology"] tr[data-group="large_value"]',
        "row => [...row.cells].slice(1).map(c => c.textContent)",
    )
    large = next(g for g in mine["by_typology"] if g["name"] == "large_value")
    assert cells == [str(large["baseline"]), str(large["candidate"]), f"+{large['gained']}",
                     f"−{large['lost']}" if large["lost"] else "0", str(large["regraded"])]  # fmt: skip
    keys = set(page.eval_on_selector_all(
        'table.replay-alerts[data-kind="gained"] tbody tr', "rows => rows.map(r => r.dataset.key)"
    ))  # fmt: skip
    assert keys == {a["alert_id"] for a in mine["gained"]}
    regions = page.eval_on_selector_all(
        'table.replay-groups[data-by="region"] tbody tr', "rows => rows.map(r => r.dataset.group)"
    )
    assert regions == ["220102"]
    text = page.locator(".page-replay").inner_text()
    assert "110105" not in text and INST_Z not in text
    assert "-console" in text  # the candidate's thresholds version
    tab.shot("replay", full_page=True)
