"""Screenshots of each console page from a running FundWatch, for docs/console/ and the README.

Against `make run` (its simulated province), in another terminal:

    .venv/bin/python -m tests.e2e.console_screenshots --base http://127.0.0.1:8080 \\
        --admin-token "$(cat var/admin-token)" --region 22 --out docs/console

It creates a desk token for the region, signs in as that desk in Debian's Chromium and saves the
sign-in, overview, queue, an alert (the most severe one that is not a large-value report), the
dossier of the institution ranked first, a trace from its custody account, the month's report and
the newest saved replay (`fundwatch replay --save`) holding rows of the region, if there is one.
Chinese text needs a CJK font on the machine (Debian's fonts-wqy-microhei, say).
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

from tests.e2e.test_console import CHROMIUM, CHROMIUM_ARGS
from tests.support import call

RANK = {"critical": 3, "high": 2, "medium": 1, "low": 0}


def api(base: str, token: str, path: str) -> dict:
    status, answer = call("GET", base + path, token)
    if status != 200:
        raise SystemExit(f"GET {path} answered {status}: {answer}")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--region", default="22")
    parser.add_argument("--out", type=Path, default=Path("docs/console"))
    args = parser.parse_args()
    base = args.base.rstrip("/")
    status, created = call(
        "POST", f"{base}/v1/admin/tokens", args.admin_token, {"role": "desk", "region": args.region}
    )
    if status != 201:
        raise SystemExit(f"could not create a desk token: {status} {created}")
    desk = created["token"]
    alerts = api(base, desk, "/v1/alerts?limit=1000")["alerts"]
    warnings = [a for a in alerts if a["typology"] != "large_value"] or alerts
    alert = max(warnings, key=lambda a: (RANK.get(a["severity"], -1), a["updated_at"])) if warnings else None
    top = api(base, desk, "/v1/overview")["top_institutions"]
    institution = top[0]["institution_id"] if top else None
    custody = None
    if institution:
        accounts = api(base, desk, f"/v1/accounts?institution_id={institution}")["accounts"]
        custody = next(
            (a["account_id"] for a in accounts if a["role"] in ("customer_custody", "payment_reserve")), None
        )

    replays = api(base, desk, "/v1/replays")["replays"]

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})

        def shot(name: str, wait: str, full_page: bool = False) -> None:
            page.wait_for_selector(wait, timeout=30000)
            page.wait_for_timeout(1000)  # charts finish drawing
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(args.out / f"{name}.png"), full_page=full_page)
            print(f"wrote {args.out / name}.png")

        page.goto(base + "/")
        shot("signin", 'input[name="token"]')
        page.fill('input[name="token"]', desk)
        page.click('form.signin button[type="submit"]')
        shot("queue", "table.queue tbody tr[data-alert-id]")
        page.goto(f"{base}/#/overview")
        shot("overview", ".page-overview .chart canvas")
        if alert:
            page.goto(f"{base}/#/alert/{alert['alert_id']}")
            page.wait_for_selector(".page-alert section", timeout=30000)
            page.wait_for_function("() => !document.querySelector('.page-alert .loading')", timeout=30000)
            shot("alert", ".page-alert section", full_page=True)
        if institution:
            page.goto(f"{base}/#/institution/{institution}")
            shot("dossier", ".page-institution .chart canvas")
        if custody:
            since = (date.today() - timedelta(days=365)).isoformat()
            page.goto(f"{base}/#/trace?{urlencode({'account': custody, 'since': since, 'hops': 3})}")
            page.wait_for_function("() => !document.querySelector('.page-trace .loading')", timeout=60000)
            shot("trace", ".page-trace table.trace-table, .page-trace p.muted")
        page.goto(f"{base}/#/report?month={date.today():%Y-%m}")
        shot("report", "article.report")
        if replays:
            page.goto(f"{base}/#/replay/{replays[0]['replay_id']}")
            shot("replay", 'table.replay-groups[data-by="typology"]', full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
