"""services/gateway/desk_store.py on both backends (a clickhouse-server 18.16 and chDB 26.x): the
desk workspace's queries return the same figures from rows written as the workers write them.

The storage fixture is shared by the session, so every row here carries ids and a region of its
own and every query is narrowed to them.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from schemas.ddl import DATABASE
from services.gateway.desk_store import DeskStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


class SyncAsAsync:
    """The store's one seam: an object with an async ``query``."""

    def __init__(self, storage) -> None:
        self.storage = storage

    async def query(self, sql, params=None):
        return self.storage.query(sql, params)


def run(coro):
    return asyncio.run(coro)


# Each world a city of its own (a 9xxx prefix no other world of the session shares) and a
# county below 99, so that the other institution's county (99) is never the first's.
_CITIES = iter(random.sample(range(1000), 1000))


@pytest.fixture
def world(storage):
    region = f"9{next(_CITIES):03d}{random.randrange(99):02d}"
    sfx = uuid.uuid4().hex[:8]
    ids = {k: f"{k}-{sfx}" for k in ("inst", "other", "cust", "own", "mid", "payee", "alert1", "alert2", "alert3")}
    version = 1
    for inst, reg, typ in ((ids["inst"], region, "p2p_lending"), (ids["other"], region[:4] + "99", "payment")):
        doc = {"institution_id": inst, "name": "某网络借贷信息中介有限公司", "uscc": "9" * 18, "type": typ,
               "region": reg, "business_scope": "", "licences": [], "status": "active"}  # fmt: skip
        storage.insert(f"{DATABASE}.ref_institutions", ("institution_id", "region", "type", "doc", "version"),
                       [[inst, reg, typ, json.dumps(doc), version]])  # fmt: skip
    for account, role in ((ids["cust"], "customer_custody"), (ids["own"], "own_operating")):
        doc = {"account_id": account, "bank_code": "B1", "institution_id": ids["inst"], "role": role,
               "holder_name": "存管户"}  # fmt: skip
        storage.insert(f"{DATABASE}.ref_accounts",
                       ("account_id", "bank_code", "institution_id", "role", "doc", "version"),
                       [[account, "B1", ids["inst"], role, json.dumps(doc), version]])  # fmt: skip
    # custody -> mid twice (and the credit leg of the second at mid's bank), mid -> payee
    txns = [
        ("r1", ids["cust"], "debit", "100.00", ids["mid"], T0),
        ("r2", ids["cust"], "debit", "50.25", ids["mid"], T0 + timedelta(hours=1)),
        ("r3", ids["mid"], "credit", "50.25", ids["cust"], T0 + timedelta(hours=1)),
        ("r4", ids["mid"], "debit", "120.00", ids["payee"], T0 + timedelta(hours=2)),
        ("r5", ids["cust"], "debit", "7.00", ids["mid"], T0 - timedelta(days=40)),  # before `since`
        ("r6", ids["cust"], "debit", "9.00", ids["mid"], T0),  # another currency below
    ]
    rows = []
    for rid, account, direction, amount, cp, at in txns:
        ccy = "USD" if rid == "r6" else "CNY"
        rows.append(["B1", f"{rid}-{sfx}", account, direction, Decimal(amount), ccy, at, cp, "B1", None, "HVPS",
                     None, None, None, None, "b", "m", at, ids["inst"] if account != ids["mid"] else "",
                     "customer_custody" if account == ids["cust"] else "", region])  # fmt: skip
    storage.insert(
        f"{DATABASE}.raw_transactions",
        ("bank_code", "record_id", "account_id", "direction", "amount", "currency", "booked_at",
         "counterparty_account", "counterparty_bank", "counterparty_name", "channel", "instruction_id", "purpose",
         "product_id", "balance_after", "batch_id", "msg_id", "received_at", "institution_id", "account_role",
         "region"),
        rows,
    )  # fmt: skip
    # aggregate partials: two messages on one day of the custody account, one of the own account
    day = datetime(2026, 11, 19, 16, 0, tzinfo=UTC)  # the Beijing day 2026-11-20
    agg = [(ids["cust"], "m1", "300.00", "100.00", day), (ids["cust"], "m2", "100.00", "0", day),
           (ids["own"], "m1", "100.00", "0", day)]  # fmt: skip
    storage.insert(
        f"{DATABASE}.agg_account_ccy",
        ("account_id", "grain", "window_start", "currency", "msg_id", "institution_id", "inflow", "outflow",
         "n_in", "n_out", "counterparties"),
        [[a, "day", at, "CNY", m, ids["inst"], Decimal(i), Decimal(o), 1, 1, []] for a, m, i, o, at in agg],
    )  # fmt: skip
    inst_agg = [("m1", "1000.00", "10.00", day), ("m2", "500.00", "0", day),
                ("m3", "70.00", "5.00", day - timedelta(days=30))]  # fmt: skip
    storage.insert(
        f"{DATABASE}.agg_institution_ccy",
        ("institution_id", "grain", "window_start", "currency", "msg_id", "region", "inflow", "outflow", "n_in",
         "n_out", "counterparties"),
        [[ids["inst"], "day", at, "CNY", m, region, Decimal(i), Decimal(o), 2, 1, []] for m, i, o, at in inst_agg],
    )  # fmt: skip
    alerts = [(ids["alert1"], "fund_pool", "high", "open", None, T0),
              (ids["alert2"], "misappropriation", "critical", "disposed", "false_positive", T0 - timedelta(days=1)),
              (ids["alert3"], "large_value", "low", "disposed", "close", T0 - timedelta(days=3))]  # fmt: skip
    storage.insert(
        f"{DATABASE}.alerts",
        ("alert_id", "typology", "severity", "status", "score", "institution_id", "region", "amount", "window_start",
         "window_end", "created_at", "updated_at", "doc", "version"),
        [[a, t, s, st, 0.5, ids["inst"], region, Decimal("1.00"), at, at, at, at,
          json.dumps({"alert_id": a, "evidence": {"metrics": {}}, "status": st, "disposition": d}, separators=(",", ":")), 1]
         for a, t, s, st, d, at in alerts],
    )  # fmt: skip
    return ids, region, DeskStore(SyncAsAsync(storage))


def test_institutions_by_prefix_type_and_id(world):
    ids, region, store = world
    assert [r.institution_id for r in run(store.institutions(region))] == [ids["inst"]]
    assert [r.institution_id for r in run(store.institutions(region[:4]))] == sorted([ids["inst"], ids["other"]])
    assert [r.type for r in run(store.institutions(region[:4], "payment"))] == ["payment"]
    assert run(store.institutions("", ids=[])) == []
    assert run(store.institutions("", ids=[ids["other"]]))[0].doc["region"] == region[:4] + "99"
    assert run(store.account_region(ids["cust"])) == ("B1", region)
    assert run(store.account_region("nobody")) == ("", "")
    assert [a["role"] for a in run(store.accounts(ids["inst"]))] == sorted(["customer_custody", "own_operating"],
                                                                           key=lambda r: r)  # fmt: skip


def test_alert_rows_carry_the_disposition_and_filter(world):
    ids, region, store = world
    rows = {r.alert_id: r for r in run(store.alert_rows(region))}
    assert set(rows) == {ids["alert1"], ids["alert2"], ids["alert3"]}
    assert (rows[ids["alert1"]].disposition, rows[ids["alert2"]].disposition) == ("", "false_positive")
    window = run(store.alert_rows(region, created_from=T0 - timedelta(days=2), created_to=T0))
    assert [r.alert_id for r in window] == [ids["alert2"]]
    assert {r.alert_id for r in run(store.alert_rows("", institution_ids=[ids["inst"]],
                                                      typologies=["fund_pool"]))} == {ids["alert1"]}  # fmt: skip
    days = run(store.alert_days(region, T0 - timedelta(days=10)))
    beijing = lambda at: int((at.timestamp() + 28800) // 86400)  # noqa: E731
    assert sorted(days) == sorted([(beijing(T0), "high", 1), (beijing(T0 - timedelta(days=1)), "critical", 1),
                                   (beijing(T0 - timedelta(days=3)), "low", 1)])  # fmt: skip


def test_flows_sum_their_partials(world):
    ids, region, store = world
    inflows = sorted(run(store.account_inflows([ids["inst"]], NOW - timedelta(days=90), NOW)))
    assert inflows == sorted([(ids["inst"], ids["cust"], 40000), (ids["inst"], ids["own"], 10000)])
    split = NOW - timedelta(days=7)
    assert run(store.institution_inflows([ids["inst"]], NOW - timedelta(days=63), split, NOW)) == {
        ids["inst"]: (7000, 150000)
    }
    days = run(store.daily_flows(ids["inst"], NOW - timedelta(days=90)))
    assert [(d[1:]) for d in days] == [("CNY", 7000, 500, 2, 1), ("CNY", 150000, 1000, 4, 2)]


def test_outgoing_edges_are_the_payers_own_debits_in_the_window_and_currency(world):
    ids, region, store = world
    edges = run(store.outgoing([ids["cust"], ids["mid"]], T0 - timedelta(days=1), NOW, "CNY"))
    by_pair = {(a, c): (s, n, first, last) for a, c, s, n, first, last in edges}
    assert by_pair == {
        (ids["cust"], ids["mid"]): (15025, 2, T0, T0 + timedelta(hours=1)),
        (ids["mid"], ids["payee"]): (12000, 1, T0 + timedelta(hours=2), T0 + timedelta(hours=2)),
    }
    assert run(store.outgoing([ids["cust"]], T0 - timedelta(days=1), NOW, "USD"))[0][2] == 900
    known = run(store.monitored([ids["cust"], ids["mid"], ids["payee"]]))
    assert set(known) == {ids["cust"], ids["mid"]}
    assert known[ids["cust"]] == (ids["inst"], "customer_custody", region)
