"""The benchmark's pure parts: its workload, percentiles and report. The measuring itself runs
real processes and is `fundwatch bench`'s job, not a test's."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta

import msgspec
import pytest

from services.bench.aged import AgedFigures
from services.bench.backlog import StackFigures
from services.bench.latency import percentile
from services.bench.processes import CpuWindow, cpu_seconds
from services.bench.report import markdown_table, rows
from services.bench.suite import BenchConfig, assemble
from services.bench.workload import (
    _split_days,
    batch_day,
    build_aged_workload,
    build_workload,
    probe_account,
    probe_batches,
    probe_reference,
)


@pytest.fixture(scope="module")
def workload():
    return build_workload(5, 24, 6_000, batch_records=2_000)


def test_the_workload_is_whole_batches_of_every_bank_up_to_the_count(workload):
    assert 6_000 <= workload.records < 6_000 + 2_000
    assert len(workload.banks) == 5
    assert workload.accounts == len(workload.reference["accounts"]) > 1_000
    for bank, body, count in workload.batches:
        batch = msgspec.json.decode(body)
        assert batch["bank_code"] == bank and len(batch["records"]) == count


def test_the_same_seed_gives_the_same_workload(workload):
    again = build_workload(5, 24, 6_000, batch_records=2_000)
    assert again.batches == workload.batches and again.reference == workload.reference


def test_every_probe_batch_carries_one_probe_on_a_day_of_its_own(workload):
    batches = probe_batches(workload, 500)
    assert sum(b.records - 1 for b in batches) == workload.records
    probes = [msgspec.json.decode(b.body)["records"][-1] for b in batches]
    assert [p["record_id"] for p in probes] == [b.probe_id for b in batches]
    assert len({p["record_id"] for p in probes}) == len(probes)
    for batch, probe in zip(batches, probes, strict=True):
        assert probe["account_id"] == probe_account(batch.bank)
        assert 1 < batch.records <= 501
    days = {(p["account_id"], p["booked_at"][:10]) for p in probes}
    assert len(days) == len(probes)  # one new large_value alert each
    accounts = probe_reference(workload)["accounts"]
    assert {a["bank_code"] for a in accounts} == set(workload.banks)
    assert all(a["role"] == "customer_custody" and a["institution_id"] for a in accounts)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0], 0.99, 1.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0), (list(map(float, range(1, 101))), 0.99, 99.0),
     (list(map(float, range(1, 101))), 1.0, 100.0)],
)  # fmt: skip
def test_percentiles_are_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_quick_runs_are_smaller_and_overrides_win():
    quick, full = BenchConfig.for_run(True), BenchConfig.for_run(False)
    assert quick.records < full.records and quick.latency_seconds < full.latency_seconds
    assert BenchConfig.for_run(True, records=1234, offered_rps=None).records == 1234
    assert quick.history_days == full.history_days == 7  # a week of state, quick or not
    assert BenchConfig.for_run(True, history_days=2).history_days == 2


def test_the_report_shows_both_provinces_and_missing_figures_as_dashes():
    result = {"accounts": 1680, "records": 60000, "pipeline_rps": 2500, "latency_p99_ms": None,
              "scale_10x": {"accounts": 16800, "pipeline_rps": 2100, "peak_rss_mb": {"worker": 900.5}},
              "peak_rss_mb": {"worker": 400.0}}  # fmt: skip
    table = dict((name, (a, b)) for name, a, b in rows(result))
    assert table["pipeline_rps"] == ("2,500", "2,100")
    assert table["latency_p99_ms"] == ("—", "")
    assert table["peak RSS worker (MiB)"] == ("400.0", "900.5")
    assert table["state written per record, backlog (bytes)"] == ("—", "—")
    assert table["state held per account (KiB)"] == ("—", "—")
    result["state_per_account_kb"] = 7.25
    result["state_bytes_per_record"] = {"pipeline": 812, "latency": 4096}
    result["scale_10x"]["state_bytes_per_record"] = {"pipeline": 1500}
    table = dict((name, (a, b)) for name, a, b in rows(result))
    assert table["state written per record, backlog (bytes)"] == ("812", "1,500")
    assert table["state written per record, at offered_rps (bytes)"] == ("4,096", "")
    assert table["state held per account (KiB)"] == ("7.2", "—")
    assert markdown_table(result).startswith("| figure | province | 10× accounts |")


def test_the_report_names_the_latency_stack_and_shows_the_other_one():
    result = {
        "latency_shape": "production", "latency_p99_ms": 669.0,
        "latency_by_shape": {
            "production": {"latency_p50_ms": 177.6, "latency_p99_ms": 669.0, "probes": 185, "probes_delivered": 185},
            "embedded": {"latency_p50_ms": 345.4, "latency_p99_ms": 1548.9, "probes": 185, "probes_delivered": 184},
        },
    }  # fmt: skip
    table = dict((name, (a, b)) for name, a, b in rows(result))
    assert table["latency measured on"] == ("processes + ClickHouse server", "")
    assert table["latency_p99_ms"] == ("669.0", "")
    assert table["latency p50 / p99 ms, fundwatch run"] == ("345.4 / 1,548.9 (184 of 185 delivered)", "")
    assert not any("processes + ClickHouse server" in name for name in table)


@pytest.fixture(scope="module")
def aged():
    return build_aged_workload(5, 24, 2, 6_000, batch_records=2_000)


def _records(workload):
    return [r for _, body, _ in workload.batches for r in msgspec.json.decode(body)["records"]]


def test_the_aged_workload_is_whole_history_days_then_the_measured_days_after_them(aged, workload):
    assert aged.history_days == 2 and len(aged.history_dates) == 2
    first = date.fromisoformat(aged.history_dates[0])
    assert aged.history_dates == [first.isoformat(), (first + timedelta(days=1)).isoformat()]
    assert aged.measured_dates and min(aged.measured_dates) > max(aged.history_dates)
    # the measured part is sized like a fresh backlog: whole batches, up to the count
    assert 6_000 <= aged.measured.records < 6_000 + 2_000
    # the history is every batch of its days: two of the province's days, all its banks
    assert aged.history.records > 20 * aged.measured.records
    assert set(aged.history.banks) == set(aged.measured.banks) == set(workload.banks)
    for part, dates in ((aged.history, aged.history_dates), (aged.measured, aged.measured_dates)):
        for bank, body, count in part.batches:
            batch = msgspec.json.decode(body)
            assert batch["bank_code"] == bank and len(batch["records"]) == count
            days = {batch_day(msgspec.json.encode({"records": [r]})) for r in batch["records"]}
            assert days == {batch_day(body)} and batch_day(body) in dates
    history_ids = {r["record_id"] for r in _records(aged.history)}
    assert not history_ids & {r["record_id"] for r in _records(aged.measured)}


def test_the_aged_workload_is_the_same_province_as_the_fresh_one(aged, workload):
    assert aged.history.reference == workload.reference
    assert aged.history.accounts == aged.measured.accounts == workload.accounts
    # the fresh backlog is the province's first records: the history begins with them
    assert {r["record_id"] for r in _records(workload)} <= {r["record_id"] for r in _records(aged.history)}
    assert aged.history_dates[0] == batch_day(workload.batches[0][1])


def test_a_batch_belongs_to_the_beijing_day_of_its_records():
    def body(moment, key="booked_at"):
        return msgspec.json.encode({"records": [{key: moment}]})

    assert batch_day(body("2026-11-02T23:30:00+08:00")) == "2026-11-02"
    assert batch_day(body("2026-11-02T16:30:00+00:00")) == "2026-11-03"  # 00:30 in Beijing
    assert batch_day(body("2026-11-02T15:59:59Z", key="as_of")) == "2026-11-02"
    # a key's text inside a string is escaped, so it is never taken for the record's time
    tricky = {
        "purpose": 'memo "booked_at":"2020-01-01T00:00:00+08:00"',
        "booked_at": "2026-11-05T09:00:00+08:00",
    }
    assert batch_day(msgspec.json.encode({"records": [tricky]})) == "2026-11-05"


def test_days_are_split_at_the_first_bank_start_for_every_bank():
    def line(day, hour):
        return msgspec.json.encode({"records": [{"booked_at": f"2026-11-0{day}T{hour:02d}:00:00+08:00"}]})

    per_bank = {
        "B001": [line(2, 1), line(2, 23), line(3, 0), line(4, 5)],
        "B002": [line(3, 1), line(4, 2)],  # starts a day later: cut from B001's first day
        "B003": [],
    }
    early, later = _split_days(per_bank, 1)
    assert early == {"B001": per_bank["B001"][:2], "B002": [], "B003": []}
    assert later == {"B001": per_bank["B001"][2:], "B002": per_bank["B002"], "B003": []}
    early, later = _split_days(per_bank, 2)
    assert [len(lines) for lines in early.values()] == [3, 1, 0]
    assert [len(lines) for lines in later.values()] == [1, 1, 0]
    with pytest.raises(ValueError):
        build_aged_workload(5, 24, 0, 1_000)


def test_the_report_shows_the_aged_rate_beside_the_fresh_one():
    result = {"pipeline_rps": 14000, "aged_pipeline_rps": 9100, "aged_over_fresh": 0.65,
              "aged_state_held_mb": 41.25,
              "aged": {"history_days": 7, "history_records": 469000, "history_rps": 8800,
                       "state_bytes_per_record": 5210}}  # fmt: skip
    table = dict((name, (a, b)) for name, a, b in rows(result))
    assert table["state written per record, aged backlog (bytes)"] == ("5,210", "")
    assert table["aged_pipeline_rps"] == ("9,100", "")
    assert table["aged / fresh pipeline"] == ("0.6500", "")
    assert table["state held before the aged backlog (MiB)"] == ("41.2", "")
    assert table["history processed before it"] == ("7 days, 469,000 records at 8,800 records/s", "")
    names = [name for name, _, _ in rows(result)]
    assert names.index("aged_pipeline_rps") == names.index("pipeline_rps") + 1
    assert "| aged_pipeline_rps | 9,100 |  |" in markdown_table(result)
    table = dict((name, (a, b)) for name, a, b in rows({"pipeline_rps": 14000}))
    assert table["aged_pipeline_rps"] == ("—", "")
    assert table["aged / fresh pipeline"] == ("—", "")
    assert table["history processed before it"] == ("—", "")
    assert table["state written per record, aged backlog (bytes)"] == ("—", "")


def _run(shape="embedded"):
    return {"shape": shape, "offered_rps": 3500, "achieved_rps": 3490, "probes": 10, "probes_delivered": 10,
            "latency_p50_ms": 300.0, "latency_p99_ms": 900.0, "peak_rss_mb": {"run": 560.0},
            "state_bytes_per_record": 1200}  # fmt: skip


def test_the_json_keeps_the_contract_keys_and_adds_the_aged_ones():
    base = StackFigures(accounts=1_654, records=60_045, gateway_rps=60_000.0, pipeline_rps=14_000.0,
                        raw_ceiling_rps=700_000.0, state_held_mb=12.7, peak_rss_mb={"worker": 530.0})  # fmt: skip
    scaled = StackFigures(
        accounts=16_982, records=60_239, pipeline_rps=6_000.0, peak_rss_mb={"worker": 540.0}
    )
    aged = AgedFigures(history_days=7, history_records=469_000, records=60_100,
                       history_dates=[f"2026-11-0{d}" for d in range(2, 9)], measured_dates=["2026-11-09"],
                       history_rps=8_800.4, aged_pipeline_rps=9_100.0, state_held_mb=41.26,
                       pause_s=2.34, peak_rss_mb={"worker": 700.0})  # fmt: skip
    config = BenchConfig.for_run(True)
    result = assemble(config, base, 2_600.0, scaled, 240, aged, [_run()])
    for key in ("raw_ceiling_rps", "pipeline_rps", "naive_faust_rps", "gateway_rps", "offered_rps",
                "latency_p50_ms", "latency_p99_ms", "peak_rss_mb"):  # fmt: skip
        assert key in result, key
    assert result["pipeline_rps"] == 14_000 and result["aged_pipeline_rps"] == 9_100
    assert result["aged_over_fresh"] == 0.65
    assert result["aged_state_held_mb"] == 41.3
    assert result["aged"]["history_rps"] == 8_800 and result["aged"]["pause_s"] == 2.3
    assert result["aged"]["state_per_account_kb"] == round(41.26 * 1024 / 1_654, 2)
    assert result["peak_rss_mb"] == {"worker": 530.0, "run": 560.0}  # the aged worker's apart
    assert result["aged"]["peak_rss_mb"] == {"worker": 700.0}
    assert result["pipeline_over_naive"] == 5.38
    assert result["worker_rss_per_account_kb"] == round(10 * 1024 / (16_982 - 1_654), 2)
    without = assemble(config, base, None, scaled, 240, None, [_run()])
    assert without["aged_pipeline_rps"] is None and without["aged_over_fresh"] is None
    assert without["aged"] is None and without["pipeline_over_naive"] is None
    slow = assemble(config, StackFigures(accounts=1, records=1), None, scaled, 240, aged, [_run()])
    assert slow["aged_over_fresh"] is None  # no fresh rate, no ratio


def test_the_report_shows_the_cpu_per_record_of_worker_and_broker():
    result = {"pipeline_cpu_us_per_record": {"worker": 72.04, "broker": 8.4},
              "aged_cpu_us_per_record": {"worker": 80.5},
              "scale_10x": {"pipeline_cpu_us_per_record": {"worker": 140.0, "broker": 9.0}}}  # fmt: skip
    table = dict((name, (a, b)) for name, a, b in rows(result))
    assert table["CPU µs per record over the backlog: worker / broker"] == ("72.0 / 8.4", "140.0 / 9.0")
    assert table["CPU µs per record, aged backlog: worker / broker"] == ("80.5 / —", "")
    table = dict((name, (a, b)) for name, a, b in rows({}))
    assert table["CPU µs per record over the backlog: worker / broker"] == ("—", "—")
    result = {"pipeline_cpu_us_per_record": {"worker": 72.0, "broker": 8.4, "worker_collector": 3.25}}
    table = dict((name, (a, b)) for name, a, b in rows(result))
    assert table["CPU µs per record over the backlog: worker / broker"][0] == "72.0 / 8.4 (worker's collector 3.2)"


def test_a_cpu_window_shows_the_workers_collector_time_per_item_when_both_ends_were_read():
    window = CpuWindow({})
    window.begin(0, collector_s=1.5)
    window.end(1_000, collector_s=1.6)
    assert window.us_per_item() == {"worker_collector": 100.0}
    unread = CpuWindow({})
    unread.begin(0)
    unread.end(1_000, collector_s=2.0)
    assert unread.us_per_item() == {}


def test_a_cpu_window_counts_the_cpu_a_process_used_per_item_between_two_moments():
    window = CpuWindow({"this": os.getpid(), "gone": None})
    window.begin(100)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    window.end(1_100)
    per_item = window.us_per_item()
    assert set(per_item) == {"this"}  # a process with no pid is left out, not counted as zero
    assert 40 <= per_item["this"] <= 1_000  # at least the 50 ms spent, over 1,000 items
    assert cpu_seconds(None) is None
    empty = CpuWindow({"this": os.getpid()})
    empty.begin(5)
    empty.end(5)
    assert empty.us_per_item() == {}  # nothing done: no figure rather than a division by zero


class _ScriptedWorker:
    """A worker whose counters move as scripted, one step per poll: (records processed, the time
    its last take was done, as an offset from the previous poll; None: the gauge not there)."""

    process = None

    def __init__(self, steps: list[tuple[int, float | None]]) -> None:
        self.steps = steps
        self.polled_at: list[float] = []

    def sample_rss(self) -> None:
        pass

    async def metrics(self, session, *names: str) -> dict[str, float]:
        from services.bench.backlog import PROCESSED, TAKE_DONE

        step = self.steps[min(len(self.polled_at), len(self.steps) - 1)]
        done = 0.0 if step[1] is None or not self.polled_at else self.polled_at[-1] + step[1]
        self.polled_at.append(time.time())
        counts = dict.fromkeys(names, 0.0)
        counts.update({PROCESSED: float(step[0]), TAKE_DONE: done})
        return counts


@pytest.mark.parametrize(
    ("done_after_s", "low", "high"),
    [(0.05, 30_000, 42_000), (None, 4_000, 10_500)],  # 2,000 records over 0.05 s; over a poll's 0.2 s
)
def test_the_backlog_rate_ends_when_the_worker_says_its_last_take_was_done(done_after_s, low, high):
    import asyncio

    from services.bench.backlog import follow_worker
    from services.progress import StatusLine

    worker = _ScriptedWorker([(0, None), (1_000, None), (3_000, done_after_s)])
    rate = asyncio.run(follow_worker(None, worker, 3_000, StatusLine("t", enabled=False), timeout_s=10))
    assert low < rate < high, rate
