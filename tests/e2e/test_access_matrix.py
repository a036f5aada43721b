"""Who may do what, where (CONTRACT.md §2): every endpoint the server has today, asked by every
kind of caller, about objects inside and outside the caller's bank or region, in one table.

A row is one request (an endpoint and the object it names); a column is one caller. Each cell is
the status that caller must get. Desks and banks get 404 for what lies outside their scope, the
same answer as for something that does not exist, and the answer names nothing of the object (no
region, no bank, no institution). A missing or unknown token is 401, a token without the right 403.

To add an endpoint, add a Row to ROWS; the callers and their scopes are in ROLES.

The world: two institutions in different provinces (220102, Changchun, and 110105, Beijing), three
accounts at two banks (the Changchun institution has one at each bank), records pushed and
processed by `fundwatch run` with its simulator running beside them, a large-value alert on each
institution's custody account, and a webhook subscription per desk.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from schemas.fields import BEIJING
from services.simulator.province import make_uscc
from tests.support import call, wait_until

pytestmark = pytest.mark.e2e

JL_REGION, BJ_REGION = "220102", "110105"
BANKS = ("B201", "B202")
# Subscriptions here are about who may make, see and change them, not about delivery: their
# filter names a typology nothing raises, so the simulator's alerts make no webhook traffic.
QUIET = {"typologies": ["anomaly"]}

# caller -> (role, bank or region) ; None for no token, "bad" for a token the server never issued
ROLES: dict[str, tuple[str, str]] = {
    "none": ("none", ""),
    "bad": ("bad", ""),
    "admin": ("admin", ""),
    "bank B201": ("bank", "B201"),
    "bank B202": ("bank", "B202"),
    "desk 22": ("desk", "22"),  # the province of 220102: a parent prefix
    "desk 2201": ("desk", "2201"),  # the city of 220102: a parent prefix
    "desk 220102": ("desk", "220102"),  # the county itself
    "desk 220103": ("desk", "220103"),  # a sibling county: foreign, though it shares 2201
    "desk 110105": ("desk", "110105"),  # another province
}


def sees(caller: str, region: str) -> bool:
    role, scope = ROLES[caller]
    return role == "admin" or (role == "desk" and region.startswith(scope))


# -- the expected answers, by kind of endpoint -----------------------------------------------


def unauthenticated(caller: str) -> int | None:
    return 401 if ROLES[caller][0] in {"none", "bad"} else None


def public(caller: str) -> int:
    return 200


def admin_only(ok: int) -> Callable[[str], int]:
    return lambda caller: unauthenticated(caller) or (ok if caller == "admin" else 403)


def bank_only(ok: int) -> Callable[[str], int]:
    return lambda caller: unauthenticated(caller) or (ok if ROLES[caller][0] == "bank" else 403)


def admin_or_own_bank(ok: int) -> Callable[[str], int]:
    return lambda caller: unauthenticated(caller) or (ok if ROLES[caller][0] in {"admin", "bank"} else 403)


def account_scope(region: str, bank: str) -> Callable[[str], int]:
    """An account's flows: admins, desks over its institution's region, its own bank; 404 for
    the others."""

    def expected(caller: str) -> int:
        role, scope = ROLES[caller]
        if unauthenticated(caller):
            return 401
        return 200 if sees(caller, region) or (role == "bank" and scope == bank) else 404

    return expected


def unknown_object(caller: str) -> int:
    return unauthenticated(caller) or 404


def desk_reads(ok: int, region: str | None = None) -> Callable[[str], int]:
    """Alert reads: admins and desks (404 outside the desk's region when ``region`` is set);
    banks have no right to alerts at all."""

    def expected(caller: str) -> int:
        role = ROLES[caller][0]
        if unauthenticated(caller):
            return 401
        if role == "bank":
            return 403
        return ok if region is None or sees(caller, region) else 404

    return expected


def unknown_alert_or_subscription(caller: str) -> int:
    return unauthenticated(caller) or (403 if ROLES[caller][0] == "bank" else 404)


def region_filter(region: str, outside: int = 403) -> Callable[[str], int]:
    """GET ...?region=: a desk asking outside its region is refused naming the field (403 on
    /v1/alerts; 404 on the desk workspace's reads, which answer outside the region as unknown)."""

    def expected(caller: str) -> int:
        role, scope = ROLES[caller]
        if unauthenticated(caller):
            return 401
        if role == "bank":
            return 403
        return 200 if role == "admin" or region.startswith(scope) or scope.startswith(region) else outside

    return expected


def subscribe_region(asked: str) -> Callable[[str], int]:
    """A desk's filter region is forced within its own: a wider one that holds it narrows to it,
    one outside it is refused naming the field."""

    def expected(caller: str) -> int:
        role, scope = ROLES[caller]
        if unauthenticated(caller):
            return 401
        if role == "bank":
            return 403
        return 201 if role == "admin" or scope.startswith(asked) or asked.startswith(scope) else 403

    return expected


def subscription_owner(owner: str, ok: int) -> Callable[[str], int]:
    """A subscription's own desk and admins; 404 for other desks, whatever their region."""

    def expected(caller: str) -> int:
        if unauthenticated(caller):
            return 401
        if ROLES[caller][0] == "bank":
            return 403
        return ok if caller in {"admin", owner} else 404

    return expected


# -- the table -------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    method: str
    path: Callable[[World], str]
    expected: Callable[[str], int]
    body: Callable[[World, str], Any] | None = None  # (world, caller) -> JSON body
    check: Callable[[World, str, Any], None] | None = None  # more about a 2xx answer
    field: str | None = None  # the field a 403 of a token with some right must name


@dataclass
class World:
    base: str
    admin: str
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    docs: dict[str, dict] = field(default_factory=dict)

    def token(self, caller: str) -> str | None:
        return self.tokens.get(caller)


def _batch(world: World, caller: str, bank: str | None = None) -> dict:
    """A one-record batch of the caller's own bank (B201 for callers without one)."""
    role, scope = ROLES[caller]
    own = scope if role == "bank" else "B201"
    bank = bank or own
    account = world.ids["jl_b201" if bank == "B201" else "bj_b202"]
    rid = f"am-{uuid.uuid4().hex[:12]}"
    return {"batch_id": rid, "bank_code": bank, "records": [_txn(rid, account, "12.34", days_ago=2)]}


def _other_bank_batch(world: World, caller: str) -> dict:
    role, scope = ROLES[caller]
    other = "B202" if scope == "B201" else "B201"
    return _batch(world, caller, bank=other)


def _own_account(world: World, caller: str) -> list[dict]:
    role, scope = ROLES[caller]
    return [world.docs["bj_b202" if scope == "B202" else "jl_b201"]]


def _other_banks_account(world: World, caller: str) -> list[dict]:
    """Another bank's registered account, claimed for the caller's own bank (a bank may not move
    an account; an admin may, and here sends it unchanged)."""
    role, scope = ROLES[caller]
    doc = world.docs["jl_b201" if scope == "B202" else "bj_b202"]
    return [{**doc, "bank_code": scope} if role == "bank" else doc]


def _fresh_desk_subscription(world: World, caller: str) -> str:
    """A new subscription of desk 220102 for each cell that deletes, rotates or reads one."""
    status, answer = call("POST", f"{world.base}/v1/subscriptions", world.tokens["desk 220102"],
                          {"url": world.ids["hook"], "filter": QUIET})  # fmt: skip
    assert status == 201, answer
    return answer["id"]


def institution_scope(region: str, ok: int) -> Callable[[str], int]:
    """Naming an institution in a body (a suppression): admins and desks over its region; other
    desks 403 naming ``institution_id``, as for an institution that does not exist."""

    def expected(caller: str) -> int:
        if unauthenticated(caller):
            return 401
        return ok if sees(caller, region) else 403

    return expected


def _suppression(world: World, caller: str) -> dict:
    """A suppression of a typology no detector of this world raises (the alerts stay delivered)."""
    until = (datetime.now(BEIJING) + timedelta(days=1)).isoformat(timespec="seconds")
    return {"typology": "anomaly", "institution_id": world.ids["inst_jl"], "until": until, "reason": "matrix"}


def _fresh_suppression(world: World, caller: str) -> str:
    """A new admin suppression on the Changchun institution for each cell that removes one."""
    status, answer = call("POST", f"{world.base}/v1/suppressions", world.admin, _suppression(world, caller))
    assert status == 201, answer
    return answer["id"]


def _suppressions_in_scope(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    if role == "desk":
        assert all(s["region"].startswith(scope) for s in answer["suppressions"]), (caller, answer)


def _alerts_in_scope(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    regions = {a["region"] for a in answer["alerts"]}
    if role == "desk":
        assert all(r.startswith(scope) for r in regions), (caller, regions)
    # each institution's alert is listed to exactly the callers who see its region
    for key, inst, region in (("alert_jl", "inst_jl", JL_REGION), ("alert_bj", "inst_bj", BJ_REGION)):
        status, listed = call(
            "GET", f"{world.base}/v1/alerts?institution_id={world.ids[inst]}", world.token(caller)
        )
        assert status == 200, listed
        assert (world.ids[key] in {a["alert_id"] for a in listed["alerts"]}) == sees(caller, region), caller


def _own_subscriptions(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    listed = {s["id"] for s in answer["subscriptions"]}
    assert "secret" not in str(answer)
    if role == "desk":
        assert world.ids[f"sub {caller}"] in listed
        assert all(s["filter"]["region"].startswith(scope) for s in answer["subscriptions"])
        others = {world.ids[f"sub {c}"] for c in ROLES if c.startswith("desk") and c != caller}
        assert not listed & others, caller
    else:
        assert {world.ids[f"sub {c}"] for c in ROLES if c.startswith("desk")} <= listed


def bank_own_accounts(region: str) -> Callable[[str], int]:
    """GET /v1/accounts?institution_id=: admins, desks over the institution's region (404 for
    others), and every bank, which is shown its own bank's accounts only."""

    def expected(caller: str) -> int:
        role = ROLES[caller][0]
        if unauthenticated(caller):
            return 401
        return 200 if role == "bank" or sees(caller, region) else 404

    return expected


def _institutions_in_scope(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    listed = {i["id"]: i["region"] for i in answer["institutions"]}
    assert all(r.startswith(scope) for r in listed.values()), (caller, listed)
    for key, region in (("inst_jl", JL_REGION), ("inst_bj", BJ_REGION)):
        assert (world.ids[key] in listed) == sees(caller, region), (caller, key)


def _accounts_in_scope(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    listed = {a["account_id"]: a for a in answer["accounts"]}
    if role == "bank":
        assert {a["bank_code"] for a in listed.values()} <= {scope}, (caller, listed)
    if role == "desk":
        assert all(a["holder_masked"] for a in listed.values()), caller
    # the simulator's province has more accounts than one page: only the world's are looked for
    keys = (("jl_b201", "B201"), ("jl_b202", "B202"), ("bj_b202", "B202"))
    for key, bank in keys:
        assert world.ids[key] not in listed or role != "bank" or scope == bank, (caller, key)


def _accounts_of(inst: str) -> Callable[[World, str, Any], None]:
    """An institution's accounts: all of them for admins and desks, a bank's own for a bank."""

    def check(world: World, caller: str, answer: Any) -> None:
        role, scope = ROLES[caller]
        listed = {a["account_id"] for a in answer["accounts"]}
        mine = {k for k, d in world.docs.items() if k in {"jl_b201", "jl_b202", "bj_b202"}
                and d["institution_id"] == world.ids[inst] and (role != "bank" or d["bank_code"] == scope)}  # fmt: skip
        assert listed == {world.ids[k] for k in mine}, (caller, listed)

    return check


def _overview_in_scope(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    assert answer["region"] == scope
    for level in ("province", "city", "county"):
        assert all(r["region"].startswith(scope[: len(r["region"])]) for r in answer["by_region"][level]), caller
    assert all(i["region"].startswith(scope) for i in answer["top_institutions"]), caller


def _report_in_scope(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    assert answer["region"] == scope
    assert all(r["key"].startswith(scope) for r in answer["by_region"] if r["alerts"] or r["institutions"]), caller


def _replays_in_scope(world: World, caller: str, answer: Any) -> None:
    role, _ = ROLES[caller]
    assert isinstance(answer["replays"], list), answer
    # how much a replay read is every region's: a desk is not told
    assert all(r["records"] is None for r in answer["replays"]) or role == "admin", (caller, answer)


def _flows_of(key: str) -> Callable[[World], str]:
    return lambda w: f"/v1/accounts/{w.ids[key]}/flows?grain=day"


def _whoami(world: World, caller: str, answer: Any) -> None:
    role, scope = ROLES[caller]
    assert answer["role"] == role, caller
    assert answer.get("region", "") == (scope if role == "desk" else ""), caller
    assert bool(answer.get("bank_code")) == (role == "bank"), caller


ROWS: list[Row] = [
    Row("liveness", "GET", lambda w: "/healthz", public),
    Row("who the token is", "GET", lambda w: "/v1/me", lambda c: unauthenticated(c) or 200, check=_whoami),
    Row("readiness", "GET", lambda w: "/readyz", public),
    Row("metrics", "GET", lambda w: "/metrics", public),
    Row("OpenAPI description", "GET", lambda w: "/v1/openapi.json", public),
    Row("create a token", "POST", lambda w: "/v1/admin/tokens", admin_only(201),
        body=lambda w, c: {"role": "desk", "region": "2201"}),
    Row("push a batch of the own bank", "POST", lambda w: "/v1/batches", bank_only(202), body=_batch),
    Row("push a batch of the other bank", "POST", lambda w: "/v1/batches", admin_only(403),
        body=_other_bank_batch, field="bank_code"),
    Row("upsert institutions", "PUT", lambda w: "/v1/reference/institutions", admin_only(200),
        body=lambda w, c: [w.docs["inst_jl"]]),
    Row("upsert an account of the own bank", "PUT", lambda w: "/v1/reference/accounts",
        admin_or_own_bank(200), body=_own_account),
    Row("upsert another bank's account", "PUT", lambda w: "/v1/reference/accounts",
        lambda c: unauthenticated(c) or (200 if c == "admin" else 403), body=_other_banks_account,
        field="account_id"),
    Row("upsert related parties", "PUT", lambda w: "/v1/reference/related-parties", admin_only(200),
        body=lambda w, c: [w.docs["party_jl"]]),
    Row("upsert products", "PUT", lambda w: "/v1/reference/products", admin_only(200),
        body=lambda w, c: [w.docs["product_jl"]]),
    Row("flows: Changchun account at B201", "GET", _flows_of("jl_b201"), account_scope(JL_REGION, "B201")),
    Row("flows: Changchun account at B202", "GET", _flows_of("jl_b202"), account_scope(JL_REGION, "B202")),
    Row("flows: Beijing account at B202", "GET", _flows_of("bj_b202"), account_scope(BJ_REGION, "B202")),
    Row("flows: an unknown account", "GET", _flows_of("unknown_account"), unknown_object),
    Row("storage summary", "GET", lambda w: "/v1/admin/storage", admin_only(200)),
    Row("list alerts", "GET", lambda w: "/v1/alerts?limit=1000", desk_reads(200), check=_alerts_in_scope),
    Row("list alerts of Beijing by filter", "GET", lambda w: f"/v1/alerts?region={BJ_REGION}",
        region_filter(BJ_REGION)),
    Row("the Changchun alert", "GET", lambda w: f"/v1/alerts/{w.ids['alert_jl']}", desk_reads(200, JL_REGION)),
    Row("the Beijing alert", "GET", lambda w: f"/v1/alerts/{w.ids['alert_bj']}", desk_reads(200, BJ_REGION)),
    Row("an unknown alert", "GET", lambda w: f"/v1/alerts/{uuid.uuid4()}", unknown_alert_or_subscription),
    Row("subscribe", "POST", lambda w: "/v1/subscriptions", desk_reads(201),
        body=lambda w, c: {"url": w.ids["hook"], "filter": QUIET}),
    Row("subscribe to Beijing's region", "POST", lambda w: "/v1/subscriptions", subscribe_region("11"),
        body=lambda w, c: {"url": w.ids["hook"], "filter": {**QUIET, "region": "11"}}),
    Row("list subscriptions", "GET", lambda w: "/v1/subscriptions", desk_reads(200), check=_own_subscriptions),
    Row("a desk's delivery log", "GET", lambda w: f"/v1/subscriptions/{w.ids['sub desk 220102']}/deliveries",
        subscription_owner("desk 220102", 200)),
    Row("an admin's delivery log", "GET", lambda w: f"/v1/subscriptions/{w.ids['sub admin']}/deliveries",
        subscription_owner("admin", 200)),
    Row("rotate a desk's secret", "POST",
        lambda w: f"/v1/subscriptions/{_fresh_desk_subscription(w, '')}/rotate-secret",
        subscription_owner("desk 220102", 200)),
    Row("delete a desk's subscription", "DELETE", lambda w: f"/v1/subscriptions/{_fresh_desk_subscription(w, '')}",
        subscription_owner("desk 220102", 204)),
    Row("an unknown subscription's log", "GET", lambda w: f"/v1/subscriptions/{uuid.uuid4()}/deliveries",
        unknown_alert_or_subscription),
    # a comment changes no status, so every cell that may act can act again
    Row("comment on the Changchun alert", "POST", lambda w: f"/v1/alerts/{w.ids['alert_jl']}/actions",
        desk_reads(200, JL_REGION), body=lambda w, c: {"action": "comment", "note": "matrix"}),
    Row("comment on the Beijing alert", "POST", lambda w: f"/v1/alerts/{w.ids['alert_bj']}/actions",
        desk_reads(200, BJ_REGION), body=lambda w, c: {"action": "comment", "note": "matrix"}),
    Row("act on an unknown alert", "POST", lambda w: f"/v1/alerts/{uuid.uuid4()}/actions",
        unknown_alert_or_subscription, body=lambda w, c: {"action": "acknowledge"}),
    Row("suppress for the Changchun institution", "POST", lambda w: "/v1/suppressions",
        institution_scope(JL_REGION, 201), body=_suppression),
    Row("list suppressions", "GET", lambda w: "/v1/suppressions", desk_reads(200), check=_suppressions_in_scope),
    Row("remove a Changchun suppression", "DELETE", lambda w: f"/v1/suppressions/{_fresh_suppression(w, '')}",
        desk_reads(204, JL_REGION)),
    Row("remove an unknown suppression", "DELETE", lambda w: f"/v1/suppressions/{uuid.uuid4()}",
        unknown_alert_or_subscription),
    # the desk workspace (issue 15): institutions, dossier, accounts, trace, overview, report
    Row("list institutions", "GET", lambda w: "/v1/institutions", desk_reads(200), check=_institutions_in_scope),
    Row("list institutions of Beijing by filter", "GET", lambda w: f"/v1/institutions?region={BJ_REGION}",
        region_filter(BJ_REGION, 404)),
    Row("the Changchun dossier", "GET", lambda w: f"/v1/institutions/{w.ids['inst_jl']}", desk_reads(200, JL_REGION)),
    Row("the Beijing dossier", "GET", lambda w: f"/v1/institutions/{w.ids['inst_bj']}", desk_reads(200, BJ_REGION)),
    Row("an unknown dossier", "GET", lambda w: f"/v1/institutions/{uuid.uuid4()}", unknown_alert_or_subscription),
    Row("list accounts", "GET", lambda w: "/v1/accounts?limit=1000",
        lambda c: unauthenticated(c) or 200, check=_accounts_in_scope),
    Row("accounts of the Changchun institution", "GET", lambda w: f"/v1/accounts?institution_id={w.ids['inst_jl']}",
        bank_own_accounts(JL_REGION), check=_accounts_of("inst_jl")),
    Row("accounts of the Beijing institution", "GET", lambda w: f"/v1/accounts?institution_id={w.ids['inst_bj']}",
        bank_own_accounts(BJ_REGION), check=_accounts_of("inst_bj")),
    Row("trace: Changchun account at B201", "GET", lambda w: f"/v1/trace?account_id={w.ids['jl_b201']}",
        desk_reads(200, JL_REGION)),
    Row("trace: Beijing account at B202", "GET", lambda w: f"/v1/trace?account_id={w.ids['bj_b202']}",
        desk_reads(200, BJ_REGION)),
    Row("trace: an unknown account", "GET", lambda w: f"/v1/trace?account_id={w.ids['unknown_account']}",
        unknown_alert_or_subscription),
    Row("overview", "GET", lambda w: "/v1/overview", desk_reads(200), check=_overview_in_scope),
    Row("overview of Beijing by filter", "GET", lambda w: f"/v1/overview?region={BJ_REGION}", region_filter(BJ_REGION, 404)),
    Row("risk report", "GET", lambda w: "/v1/reports/risk", desk_reads(200), check=_report_in_scope),
    Row("risk report as a workbook", "GET", lambda w: "/v1/reports/risk?format=xlsx", desk_reads(200)),
    Row("risk report of Beijing by filter", "GET", lambda w: f"/v1/reports/risk?region={BJ_REGION}",
        region_filter(BJ_REGION, 404)),
    # saved replays (`fundwatch replay --save`): this world's store is its `fundwatch run`'s own chDB,
    # which no replay can write while it runs; a saved replay's rows per region and caller are
    # tests/integration/test_replay_reports.py's, over HTTP on a clickhouse-server
    Row("list saved replays", "GET", lambda w: "/v1/replays", desk_reads(200), check=_replays_in_scope),
    Row("list saved replays of Beijing by filter", "GET", lambda w: f"/v1/replays?region={BJ_REGION}",
        region_filter(BJ_REGION, 404)),
    Row("an unknown replay", "GET", lambda w: f"/v1/replays/rp-{uuid.uuid4().hex}", unknown_alert_or_subscription),
]  # fmt: skip


# -- the world -------------------------------------------------------------------------------


def _txn(record_id: str, account: str, amount: str, days_ago: int, direction: str = "credit") -> dict:
    day = datetime.now(BEIJING).date() - timedelta(days=days_ago)
    return {
        "kind": "transaction", "record_id": record_id, "account_id": account, "direction": direction,
        "amount": amount, "currency": "CNY", "booked_at": f"{day.isoformat()}T10:30:00+08:00",
        "counterparty_account": "6228480000" + record_id[-6:].replace("-", "0"), "counterparty_bank": "B999",
        "channel": "HVPS",
    }  # fmt: skip


@pytest.fixture(scope="module")
def world(simulated_province) -> World:
    stack = simulated_province
    rng = random.Random()
    w = World(stack.base, stack.admin)
    suffix = uuid.uuid4().hex[:6].upper()
    w.ids["hook"] = stack.receivers.url(f"matrix-{suffix}")
    for caller, (role, scope) in ROLES.items():
        if role == "bank":
            w.tokens[caller] = stack.token({"role": "bank", "bank_code": scope})
        elif role == "desk":
            w.tokens[caller] = stack.token({"role": "desk", "region": scope})
    w.tokens["admin"] = stack.admin
    w.tokens["bad"] = "fw_admin_" + uuid.uuid4().hex + uuid.uuid4().hex
    stack.note("tokens", w.tokens["bad"])

    def number() -> str:
        return "62170" + "".join(rng.choice("0123456789") for _ in range(14))

    for key, region, city in (("jl", JL_REGION, "长春"), ("bj", BJ_REGION, "北京")):
        w.ids[f"inst_{key}"] = f"AM-{key.upper()}-{suffix}"
        w.docs[f"inst_{key}"] = {
            "institution_id": w.ids[f"inst_{key}"], "name": f"{city}某网络借贷信息中介有限公司",
            "uscc": make_uscc(rng, region), "type": "p2p_lending", "region": region,
            "business_scope": "网络借贷信息中介服务", "licences": ["ICP"], "status": "active",
        }  # fmt: skip
    accounts = {
        "jl_b201": ("B201", "inst_jl", "customer_custody", "长春某网络借贷信息中介有限公司客户资金存管户"),
        "jl_b202": ("B202", "inst_jl", "own_operating", "长春某网络借贷信息中介有限公司"),
        "bj_b202": ("B202", "inst_bj", "customer_custody", "北京某网络借贷信息中介有限公司客户资金存管户"),
    }
    for key, (bank, inst, role, holder) in accounts.items():
        w.ids[key] = number()
        w.docs[key] = {"account_id": w.ids[key], "bank_code": bank, "institution_id": w.ids[inst],
                       "role": role, "holder_name": holder}  # fmt: skip
        stack.note("accounts", w.ids[key])
        stack.note("names", holder)
    w.ids["unknown_account"] = number()
    w.docs["party_jl"] = {"party_id": f"AM-P-{suffix}", "institution_id": w.ids["inst_jl"], "name": "王某某",
                          "relation": "actual_controller", "accounts": []}  # fmt: skip
    w.docs["product_jl"] = {
        "product_id": f"AM-PRD-{suffix}", "institution_id": w.ids["inst_jl"], "name": "稳健一号",
        "declared_annual_yield": "0.06", "term_days": 180, "underlying_project_rate": "0.09",
        "underlying_term_days": 180, "investor_cap": 200,
    }  # fmt: skip
    stack.note("names", w.docs["party_jl"]["name"])

    for kind, items in (("institutions", [w.docs["inst_jl"], w.docs["inst_bj"]]),
                        ("accounts", [w.docs[k] for k in accounts])):  # fmt: skip
        status, answer = call("PUT", f"{w.base}/v1/reference/{kind}", w.admin, items)
        assert status == 200 and answer["upserted"] == len(items), answer

    # records on every account, and a transfer over CNY 2,000,000 into each custody account
    # (a non-natural person): one large_value alert per institution
    pushes = {
        "B201": [_txn(f"am-{suffix}-1", w.ids["jl_b201"], "2500000.00", days_ago=3),
                 {**_txn(f"am-{suffix}-2", w.ids["jl_b201"], "1200.50", days_ago=3, direction="debit"),
                  "instruction_id": f"INS-{suffix}"}],  # instructed: a lender's loan, no misappropriation
        "B202": [_txn(f"am-{suffix}-3", w.ids["bj_b202"], "3100000.00", days_ago=3),
                 _txn(f"am-{suffix}-4", w.ids["jl_b202"], "880.00", days_ago=3)],
    }  # fmt: skip
    for bank, records in pushes.items():
        status, answer = call("POST", f"{w.base}/v1/batches", w.tokens[f"bank {bank}"],
                              {"batch_id": f"am-{suffix}-{bank}", "bank_code": bank, "records": records})  # fmt: skip
        assert status == 202 and answer["accepted"] == len(records), answer

    def alert_of(institution: str) -> str | None:
        status, answer = call("GET", f"{w.base}/v1/alerts?institution_id={w.ids[institution]}", w.admin)
        assert status == 200, answer
        found = [a["alert_id"] for a in answer["alerts"] if a["typology"] == "large_value"]
        return found[0] if found else None

    w.ids["alert_jl"] = wait_until(lambda: alert_of("inst_jl"), 60, interval=0.5, what="the Changchun alert")
    w.ids["alert_bj"] = wait_until(lambda: alert_of("inst_bj"), 60, interval=0.5, what="the Beijing alert")
    for key in accounts:
        wait_until(lambda k=key: call("GET", f"{w.base}{_flows_of(k)(w)}", w.admin)[0] == 200, 60,
                   what=f"flows of {key}")  # fmt: skip

    for caller in [c for c in ROLES if c.startswith("desk")] + ["admin"]:
        status, answer = call("POST", f"{w.base}/v1/subscriptions", w.tokens[caller],
                              {"url": w.ids["hook"], "filter": QUIET})  # fmt: skip
        assert status == 201, answer
        w.ids[f"sub {caller}"] = answer["id"]
        stack.note("secrets", answer["secret"])
    return w


@pytest.fixture(scope="module")
def tally():
    counts = {"rows": 0, "cells": 0}
    yield counts
    print(f"\naccess matrix: rows={counts['rows']} callers={len(ROLES)} cells={counts['cells']}")


def _hints(world: World, answer: Any) -> list[str]:
    """What a 404 gives away of the object it hides: its institution, region or bank."""
    text = str(answer)
    secrets = [world.ids[k] for k in ("inst_jl", "inst_bj")] + [JL_REGION, BJ_REGION, *BANKS]
    return [s for s in secrets if s in text]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_access_matrix(row: Row, world: World, tally) -> None:
    wrong = []
    for caller in ROLES:
        path = row.path(world)
        body = row.body(world, caller) if row.body is not None else None
        status, answer = call(row.method, world.base + path, world.token(caller), body)
        want = row.expected(caller)
        tally["cells"] += 1
        if status != want:
            wrong.append(f"{caller}: {status} (want {want}) {str(answer)[:160]}")
            continue
        if status in {401, 403, 404}:
            assert isinstance(answer, dict) and set(answer["error"]) >= {"code", "message"}, answer
            leaked = _hints(world, answer) if status == 404 else []
            if leaked:
                wrong.append(f"{caller}: 404 names {leaked}: {answer}")
            if status == 403 and row.field and ROLES[caller][0] == "bank":
                if answer["error"].get("field") != row.field:
                    wrong.append(
                        f"{caller}: 403 names field {answer['error'].get('field')!r}, want {row.field!r}"
                    )
        elif row.check is not None:
            row.check(world, caller, answer)
    tally["rows"] += 1
    assert not wrong, f"{row.method} {row.name}:\n  " + "\n  ".join(wrong)
