"""`fundwatch replay` on plain inputs: the comparison of two runs' alerts, the slices the records are
read in, the messages rebuilt from raw rows, the read-only guard and the command's arguments."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas.fields import BEIJING
from schemas.messages import BalanceRecord, TxnRecord
from services.cli import main
from services.replay.compare import AlertView, compare, latest_revisions
from services.replay.source import ReadOnly, assemble, plan_slices
from services.storage.base import StorageError


def alert(alert_id: str, typology: str = "large_value", severity: str = "low", **more: str) -> AlertView:
    return AlertView(
        alert_id=alert_id,
        typology=typology,
        institution_id=more.get("institution_id", "INS0001"),
        region=more.get("region", "220102"),
        severity=severity,
        amount=more.get("amount", "2000000.00"),
        window_start="2026-11-02T00:00:00Z",
        window_end="2026-11-03T00:00:00Z",
    )


# --- the comparison ----------------------------------------------------------------------------


def test_the_same_alerts_compare_identical():
    alerts = [alert("a"), alert("b", "fund_pool", "high")]
    result = compare(alerts, list(reversed(alerts)))
    assert result.identical
    assert (result.baseline_alerts, result.candidate_alerts, result.unchanged) == (2, 2, 2)
    assert all(g.gained == g.lost == g.changed == 0 for g in result.by_typology)


def test_gained_lost_and_changed_are_paired_by_alert_id():
    baseline = [
        alert("kept"),
        alert("regraded", severity="low"),
        alert("dropped", "fund_pool", "high", institution_id="INS0002", region="220203"),
    ]
    candidate = [
        alert("kept"),
        alert("regraded", severity="medium", amount="25000000.00"),
        alert("new-1", institution_id="INS0003", region="220301"),
        alert("new-2", institution_id="INS0003", region="220301"),
    ]
    result = compare(baseline, candidate)
    assert [a.alert_id for a in result.gained] == ["new-1", "new-2"]
    assert [a.alert_id for a in result.lost] == ["dropped"]
    assert [(c.alert.alert_id, c.baseline, c.candidate) for c in result.changed] == [
        ("regraded", "low", "medium")
    ]
    assert result.changed[0].alert.amount == "25000000.00"  # as the candidate has it
    assert result.unchanged == 1
    assert not result.identical


def test_counts_per_typology_follow_the_contracts_order():
    baseline = [alert("lv"), alert("fp", "fund_pool"), alert("mis", "misappropriation", "high")]
    candidate = [alert("lv"), alert("lv2"), alert("mis", "misappropriation", "critical")]
    rows = {
        g.name: (g.baseline, g.candidate, g.gained, g.lost, g.changed)
        for g in compare(baseline, candidate).by_typology
    }
    assert rows == {
        "misappropriation": (1, 1, 0, 0, 1),
        "fund_pool": (1, 0, 0, 1, 0),
        "large_value": (1, 2, 1, 0, 0),
    }
    assert [g.name for g in compare(baseline, candidate).by_typology] == [
        "misappropriation",
        "fund_pool",
        "large_value",
    ]


def test_institutions_and_regions_that_moved_most_come_first():
    baseline = [alert("x", institution_id="INS0009", region="220103")]
    candidate = [
        alert("x", institution_id="INS0009", region="220103"),
        *(alert(f"g{n}", institution_id="INS0002", region="220201") for n in range(3)),
        alert("h", institution_id="INS0005", region="220103"),
        alert("orphan", institution_id="", region=""),
    ]
    result = compare(baseline, candidate)
    assert [(g.name, g.gained) for g in result.by_institution] == [
        ("INS0002", 3), ("(none)", 1), ("INS0005", 1), ("INS0009", 0),
    ]  # fmt: skip
    assert [(g.name, g.baseline, g.candidate, g.gained) for g in result.by_region] == [
        ("220201", 0, 3, 3), ("220103", 1, 2, 1), ("(none)", 0, 1, 1),
    ]  # fmt: skip


def test_the_newest_revision_of_each_alert_is_kept():
    seen: dict = {}
    data = {"alert_id": "a", "typology": "large_value", "severity": "low", "amount": "1.00"}
    latest_revisions(seen, [{**data, "revision": 1}, {**data, "revision": 3, "severity": "medium"}])
    latest_revisions(seen, [{**data, "revision": 2, "severity": "high"}])  # an older one arriving late
    assert seen["a"][0] == 3 and seen["a"][1].severity == "medium"


# --- slices and messages -----------------------------------------------------------------------


def test_slices_hold_whole_seconds_up_to_the_limit():
    sizes = [(100, 400), (101, 500), (102, 200), (105, 2_000), (106, 50)]
    assert plan_slices(sizes, 1_000) == [(100, 102, 900), (102, 103, 200), (105, 106, 2_000), (106, 107, 50)]
    assert plan_slices(sizes, 10_000) == [(100, 107, 3_150)]
    assert plan_slices([], 1_000) == []


def _txn_row(msg_id: str, received: int, record_id: str, booked: int, **more) -> tuple:
    bank, batch, _ = msg_id.split("/")
    return (
        bank, batch, msg_id, received, record_id, more.get("account", "acc-1"), more.get("credit", 1),
        more.get("amount", "100.5"), booked, "cp-1", "B002", "IBPS", "CNY", None, more.get("instruction"),
        None, None, more.get("balance_after"),
    )  # fmt: skip


def test_messages_come_back_in_the_order_the_workers_took_them():
    rows = [
        _txn_row("B001/b2/0", 1_000, "r9", 50),
        _txn_row("B001/b1/10", 900, "r3", 10),
        _txn_row("B001/b1/2", 900, "r2", 30),
        _txn_row("B001/b1/2", 900, "r1", 30),
        _txn_row("B001/b1/2", 900, "r0", 40),
    ]
    balances = [("B001", "b1", "B001/b1/2", 900, "r5", "acc-1", 20, "-12", None, "CNY")]
    messages = assemble(rows, balances)
    assert [m.msg_id for m in messages] == ["B001/b1/2", "B001/b1/10", "B001/b2/0"]  # partition 2 before 10
    first = messages[0]
    assert (first.bank_code, first.batch_id, first.received_at) == ("B001", "b1", 900)
    # records by event time, then id; the balance among the transactions
    assert [r.record_id for r in first.records] == ["r5", "r1", "r2", "r0"]


def test_raw_rows_become_the_records_the_gateway_made():
    (message,) = assemble(
        [_txn_row("B001/b1/0", 900, "t1", 1_700_000_000, credit=0, amount="2000000", instruction="ins-1", balance_after="-0.5")],
        [("B001", "b1", "B001/b1/0", 900, "b1", "acc-1", 1_700_000_100, "10.25", "10.3", "CNY")],
    )  # fmt: skip
    txn, balance = message.records
    assert txn == TxnRecord(
        "t1",
        "acc-1",
        False,
        200_000_000,
        1_700_000_000,
        "cp-1",
        "B002",
        "IBPS",
        "CNY",
        None,
        "ins-1",
        None,
        None,
        -50,
    )
    assert balance == BalanceRecord("b1", "acc-1", 1_700_000_100, 1_025, 1_030, "CNY")


class _Recording:
    kind = "fake"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def query(self, sql, params=None):
        self.asked.append(sql)
        return []


def test_the_replay_storage_only_reads():
    inner = _Recording()
    reader = ReadOnly(inner)
    assert reader.query("  select 1") == []
    with pytest.raises(StorageError, match="only reads"):
        reader.query("INSERT INTO fundwatch.alerts SELECT * FROM fundwatch.alerts")
    with pytest.raises(StorageError):
        reader.query("OPTIMIZE TABLE fundwatch.alerts FINAL")
    assert inner.asked == ["  select 1"]
    assert not hasattr(reader, "insert") and not hasattr(reader, "execute")


# --- the command -------------------------------------------------------------------------------


def test_a_date_is_midnight_in_beijing_and_a_time_needs_its_offset():
    from services.cli import _replay_time
    from services.config import ConfigError

    assert _replay_time("2026-11-02", "--from") == datetime(2026, 11, 2, tzinfo=BEIJING)
    assert _replay_time("2026-11-02T08:00:00Z", "--from") == datetime(2026, 11, 2, 16, tzinfo=BEIJING)
    assert _replay_time("2026-11-02T08:00:00+08:00", "--until").utcoffset() == timedelta(hours=8)
    with pytest.raises(ConfigError, match="--from needs an offset"):
        _replay_time("2026-11-02T08:00:00", "--from")
    with pytest.raises(ConfigError, match="--until must be RFC 3339"):
        _replay_time("last week", "--until")


def test_replay_refuses_a_period_that_ends_before_it_starts(capsys, tmp_path):
    code = main(["replay", "--from", "2026-11-09", "--until", "2026-11-02", "--data-dir", str(tmp_path)])
    assert code == 2
    assert "--until" in capsys.readouterr().err


def test_replay_does_not_create_a_store_that_is_not_there(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("FUNDWATCH_CLICKHOUSE_URL", raising=False)
    code = main(
        ["replay", "--from", "2026-11-02", "--until", "2026-11-09", "--data-dir", str(tmp_path / "none")]
    )
    assert code == 2
    assert "no chDB store" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_replay_names_a_bad_candidate_file(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[large_value]\ncash = "1.00"\n', "utf-8")  # no version
    code = main(
        [
            "replay",
            "--from",
            "2026-11-02",
            "--until",
            "2026-11-09",
            "--thresholds",
            str(bad),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert str(bad) in capsys.readouterr().err
