"""Saved replays (`fundwatch replay --save`) on both backends (a clickhouse-server 18.16 and chDB
26.x): a report written by services/replay/store.py reads back through the gateway's reads as it
was, whole for an admin and cut to its region for a desk; and over HTTP on the real server, the
routes answer per caller as the desk workspace's reads do (bank 403, outside the region 404).

The storage fixtures are shared by the session: every replay here is found by its own id, and
its alerts lie in regions of its own."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from schemas.ddl import DATABASE
from schemas.replays import ModelRef
from services.auth import Principal, TokenStore, hash_token
from services.gateway.errors import ApiError
from services.gateway.replay_reads import ReplayReads
from services.replay.compare import AlertView, compare
from services.replay.engine import ReplayReport
from services.replay.saved import groups
from services.replay.store import save_report
from tests.support import free_port

pytestmark = pytest.mark.integration

MODEL = ModelRef(artefact_id="anomaly-0123456789abcdef", digest="0123456789abcdef" * 4)


def regions() -> tuple[str, str]:
    """Two provinces no other test writes to: a 9x province and its neighbour."""
    first = random.choice("0123456789")
    return f"9{first}0102", f"9{(int(first) + 1) % 10}0105"


def alert(
    n: int, region: str, typology: str = "large_value", severity: str = "low", amount: str = ""
) -> AlertView:
    return AlertView(
        alert_id=f"al-{region}-{typology}-{n}", typology=typology, institution_id=f"INS-{region}",
        region=region, severity=severity, amount=amount or f"{2_000_000 + n * 1000}.00",
        window_start="2026-11-02T00:00:00Z", window_end="2026-11-03T00:00:00Z",
    )  # fmt: skip


def report(baseline: list[AlertView], candidate: list[AlertView]) -> ReplayReport:
    return ReplayReport(
        since="2026-11-02T00:00:00Z", until="2026-11-09T00:00:00Z", storage="test",
        baseline_thresholds="2026.12.2", candidate_thresholds="2026.12.2-low", candidate_file="/tmp/low.toml",
        candidate_model=MODEL, records=5000, messages=50, elapsed_s=2.0, comparison=compare(baseline, candidate),
    )  # fmt: skip


class SyncAsAsync:
    def __init__(self, storage) -> None:
        self.storage = storage

    async def query(self, sql, params=None):
        return self.storage.query(sql, params)


ADMIN = Principal("admin-1", "admin")


def desk(region: str) -> Principal:
    return Principal(f"desk-{region}", "desk", region=region)


@pytest.fixture
def saved(storage) -> dict[str, Any]:
    """Two replays: one moving alerts in two provinces (and one of no institution), one moving
    alerts of the second province only."""
    jl, bj = regions()
    baseline = [alert(1, jl), alert(2, jl, "fund_pool", "medium"), alert(3, bj, "misappropriation", "high")]
    candidate = [
        alert(1, jl), alert(2, jl, "fund_pool", "high"), *(alert(10 + n, jl) for n in range(3)),
        alert(20, bj), AlertView(alert_id=f"orphan-{jl}", typology="anomaly", institution_id="", region="",
                                 severity="low", amount="1.00", window_start="", window_end=""),
    ]  # fmt: skip
    both = report(baseline, candidate)
    only_bj = report([alert(4, bj)], [])
    return {
        "jl": jl, "bj": bj, "both": both, "only_bj": only_bj,
        "both_id": save_report(storage, both), "bj_id": save_report(storage, only_bj),
    }  # fmt: skip


def listed(reads: ReplayReads, principal: Principal, **query: str) -> dict[str, Any]:
    answer = asyncio.run(reads.list(principal, query))
    return {r.replay_id: r for r in answer.replays}


def test_a_saved_replay_reads_back_whole_for_an_admin(storage, saved):
    reads = ReplayReads(SyncAsAsync(storage))
    both = saved["both"].comparison
    summary = listed(reads, ADMIN, limit="1000")[saved["both_id"]]
    assert (summary.since, summary.until, summary.records, summary.messages) == (
        "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z", 5000, 50,
    )  # fmt: skip
    assert summary.candidate.model == MODEL and summary.baseline.model is None
    assert summary.candidate.thresholds_file == "low.toml"
    assert (summary.totals.baseline_alerts, summary.totals.candidate_alerts) == (3, 7)
    assert (summary.totals.gained, summary.totals.lost, summary.totals.regraded) == (5, 1, 1)
    detail = asyncio.run(reads.get(ADMIN, saved["both_id"], {}))
    assert detail.region == "" and not detail.truncated
    assert sorted(a.alert_id for a in detail.gained) == sorted(a.alert_id for a in both.gained)
    assert [a.alert_id for a in detail.lost] == [a.alert_id for a in both.lost]
    (regraded,) = detail.regraded
    assert (regraded.severity, regraded.baseline_severity) == ("high", "medium")
    assert detail.by_typology == groups(both.cells, "typology")
    assert {g.name for g in detail.by_region} == {saved["jl"], saved["bj"], "(none)"}
    # the largest amounts first
    amounts = [float(a.amount) for a in detail.gained]
    assert amounts == sorted(amounts, reverse=True)


def test_a_desk_sees_its_own_regions_rows_only(storage, saved):
    reads = ReplayReads(SyncAsAsync(storage))
    jl, bj = saved["jl"], saved["bj"]
    mine = listed(reads, desk(jl[:4]), limit="1000")
    assert saved["both_id"] in mine and saved["bj_id"] not in mine  # it holds nothing of jl
    summary = mine[saved["both_id"]]
    assert summary.records is None and summary.messages is None  # every region's volume
    assert (summary.totals.baseline_alerts, summary.totals.candidate_alerts, summary.totals.gained) == (
        2,
        5,
        3,
    )
    detail = asyncio.run(reads.get(desk(jl[:4]), saved["both_id"], {}))
    assert {a.region for a in [*detail.gained, *detail.lost, *detail.regraded]} == {jl}
    assert {g.name for g in detail.by_region} == {jl} and detail.region == jl[:4]
    assert {g.name for g in detail.by_institution} == {f"INS-{jl}"}
    assert saved["bj_id"] in listed(reads, desk(bj[:2])) and saved["bj_id"] not in listed(reads, desk(jl[:2]))
    with pytest.raises(ApiError) as refused:
        asyncio.run(reads.get(desk(jl[:4]), saved["bj_id"], {}))
    assert refused.value.status == 404 and bj not in str(refused.value)
    with pytest.raises(ApiError) as outside:
        asyncio.run(reads.get(desk(jl[:4]), saved["both_id"], {"region": bj}))
    assert (outside.value.status, outside.value.field) == (404, "region")


def test_a_region_filter_narrows_and_a_limit_cuts_each_list(storage, saved):
    reads = ReplayReads(SyncAsAsync(storage))
    narrowed = asyncio.run(reads.get(ADMIN, saved["both_id"], {"region": saved["bj"]}))
    assert [a.region for a in narrowed.gained] == [saved["bj"]] and narrowed.region == saved["bj"]
    assert narrowed.replay.records == 5000  # an admin's, whatever the filter
    cut = asyncio.run(reads.get(ADMIN, saved["both_id"], {"limit": "1"}))
    assert cut.truncated and len(cut.gained) == 1 and cut.replay.totals.gained == 5
    assert cut.gained[0].amount == max((a.amount for a in saved["both"].comparison.gained), key=float)
    with pytest.raises(ApiError) as bank:
        asyncio.run(reads.list(Principal("bank-1", "bank", bank_code="B001"), {}))
    assert bank.value.status == 403


def test_saving_writes_only_the_replay_tables(storage):
    tables = [
        r[0]
        for r in storage.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": DATABASE})
    ]
    before = {t: storage.query(f"SELECT count() FROM {DATABASE}.{t}")[0][0] for t in tables}
    jl, _ = regions()
    save_report(storage, report([alert(1, jl)], [alert(1, jl), alert(2, jl)]))
    after = {t: storage.query(f"SELECT count() FROM {DATABASE}.{t}")[0][0] for t in tables}
    changed = {t for t in tables if after[t] != before[t]}
    assert changed == {"replays", "replay_alerts", "replay_counts"}


# --- over HTTP, on the real server ---------------------------------------------------------------

TOKENS = {"admin": "fw_admin_" + "R" * 40, "bank": "fw_bank_" + "B" * 40}


def _gateway(server_storage, desks: dict[str, str]) -> web.Application:
    from services import secret_box
    from services.gateway.api import Gateway
    from services.storage.async_storage import AsyncStorage

    secret_box.install(secret_box.SecretBox(secret_box.parse_key(secret_box.new_key())))
    storage = AsyncStorage(server_storage, "replay-api")
    tokens = TokenStore(storage)
    tokens.bootstrap_admin(TOKENS["admin"])
    principals = {TOKENS["bank"]: Principal("bank-1", "bank", bank_code="B001")}
    principals |= {token: desk(region) for region, token in desks.items()}
    for token, principal in principals.items():
        tokens._by_hash[hash_token(token)] = (hash_token(token), principal)
    return Gateway(storage, _NoBroker(), tokens, partitions=4).application()  # type: ignore[arg-type]


class _NoBroker:
    async def send_all(self, messages: Any) -> None:
        list(messages)

    async def ping(self) -> bool:
        return True


def test_the_routes_answer_each_caller_within_its_region(server_storage):
    jl, bj = regions()
    both = save_report(server_storage, report([alert(1, jl), alert(3, bj)], [alert(1, jl), alert(2, jl)]))
    desks = {jl[:4]: "fw_desk_" + "J" * 40, bj: "fw_desk_" + "K" * 40, "33": "fw_desk_" + "Z" * 40}

    async def scenario() -> dict[str, tuple[int, Any]]:
        runner = web.AppRunner(_gateway(server_storage, desks))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        answers: dict[str, tuple[int, Any]] = {}
        calls = {
            "admin list": ("/v1/replays?limit=1000", TOKENS["admin"]),
            "jl list": ("/v1/replays?limit=1000", desks[jl[:4]]),
            "jl one": (f"/v1/replays/{both}", desks[jl[:4]]),
            "bj one": (f"/v1/replays/{both}", desks[bj]),
            "33 one": (f"/v1/replays/{both}", desks["33"]),
            "unknown": ("/v1/replays/rp-nothing", TOKENS["admin"]),
            "bank": ("/v1/replays", TOKENS["bank"]),
            "no token": ("/v1/replays", None),
            "bad limit": (f"/v1/replays/{both}?limit=0", TOKENS["admin"]),
            "bad region": ("/v1/replays?region=22x", desks[jl[:4]]),
            "outside": (f"/v1/replays?region={bj}", desks[jl[:4]]),
        }
        try:
            async with aiohttp.ClientSession() as session:
                for name, (path, token) in calls.items():
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response:
                        answers[name] = (response.status, await response.json())
        finally:
            await runner.cleanup()
        return answers

    got = asyncio.run(scenario())
    status = {name: answer[0] for name, answer in got.items()}
    assert status == {
        "admin list": 200, "jl list": 200, "jl one": 200, "bj one": 200, "33 one": 404, "unknown": 404,
        "bank": 403, "no token": 401, "bad limit": 422, "bad region": 422, "outside": 404,
    }  # fmt: skip
    assert both in {r["replay_id"] for r in got["admin list"][1]["replays"]}
    jl_answer = got["jl one"][1]
    assert [a["region"] for a in jl_answer["gained"]] == [jl] and jl_answer["lost"] == []
    assert jl_answer["replay"]["records"] is None and jl_answer["replay"]["candidate"]["model"] == {
        "artefact_id": MODEL.artefact_id, "digest": MODEL.digest,
    }  # fmt: skip
    assert [a["region"] for a in got["bj one"][1]["lost"]] == [bj] and got["bj one"][1]["gained"] == []
    assert jl not in str(got["33 one"][1]) and bj not in str(got["33 one"][1])
    assert got["bad limit"][1]["error"]["field"] == "limit"
    assert got["bad region"][1]["error"]["field"] == "region"
    assert got["outside"][1]["error"]["field"] == "region"
