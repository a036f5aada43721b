"""The detectors' steps alone on the bench's own records (services/bench/detection_steps.py): the
messages are the gateway's split of the workload's batches, the figures reach the JSON and the
table, and the bench's collector settings are left as they were."""

from __future__ import annotations

import gc

import msgspec
import pytest

from schemas.messages import partition_for
from services.bench import pure_steps
from services.bench.aged import AgedFigures
from services.bench.backlog import StackFigures
from services.bench.detection_steps import DetectionFigures, detection_figures, workload_messages
from services.bench.pure_steps import feed, pipeline_factory
from services.bench.report import rows
from services.bench.suite import BenchConfig, assemble
from services.bench.workload import build_aged_workload, build_workload
from services.collector import DEFAULT_THRESHOLDS
from services.simulator.pipeline import PARTITIONS


@pytest.fixture(scope="module")
def workload():
    return build_workload(7, 24, 4_000, batch_records=1_000)


def test_every_record_of_the_workload_is_in_one_message_of_its_partition(workload):
    messages = workload_messages(workload)
    sent = sorted(
        r["record_id"] for _, body, _ in workload.batches for r in msgspec.json.decode(body)["records"]
    )
    stepped = sorted(record.record_id for _, _, records in messages for record in records)
    assert stepped == sent
    for bank, msg_id, records in messages:
        batch_bank, _, partition = msg_id.rpartition("/")
        assert batch_bank.startswith(f"{bank}/") and 0 <= int(partition) < PARTITIONS
        assert records and {partition_for(record.account_id, PARTITIONS) for record in records} == {
            int(partition)
        }


def test_the_messages_step_to_alerts_as_the_pipeline_would(workload):
    pipe = pipeline_factory(workload.reference)()
    for bank, msg_id, records in workload_messages(workload):
        pipe.push_message(bank, msg_id, records)
    assert pipe.records == workload.records
    assert pipe.events  # the province raises its routine large-value reports


def test_the_steps_run_fresh_and_after_the_history_under_the_workers_collector(workload, monkeypatch):
    aged = build_aged_workload(7, 24, 1, 2_000, batch_records=1_000)
    fed: list[tuple[int, tuple[int, int, int]]] = []  # (records stepped, collector thresholds meanwhile)

    def feed_seen(pipe, messages, take=1, every_tenth=None):
        fed.append((sum(len(records) for _, _, records in messages), gc.get_threshold()))
        feed(pipe, messages, take, every_tenth)

    monkeypatch.setattr(pure_steps, "feed", feed_seen)
    before = gc.get_threshold()
    figures = detection_figures(workload, aged, take=8)
    assert gc.get_threshold() == before  # the bench's own settings again
    # fresh: nothing before the workload; aged: the whole history, then the measured records
    assert [count for count, _ in fed] == [0, workload.records, aged.history.records, aged.measured.records]
    assert {thresholds for _, thresholds in fed} == {tuple(DEFAULT_THRESHOLDS)}
    assert figures.fresh_us_per_record > 0 and figures.aged_us_per_record > 0
    assert figures.messages_per_take == 8
    alone = detection_figures(workload)
    assert alone.aged_us_per_record is None and alone.fresh_us_per_record > 0


def test_the_json_and_the_table_carry_the_steps_beside_the_workers_cpu():
    base = StackFigures(accounts=1_654, records=60_045, pipeline_rps=40_000.0,
                        pipeline_cpu_us_per_record={"worker": 30.5, "broker": 1.7})  # fmt: skip
    scaled = StackFigures(accounts=16_982, records=60_239, pipeline_rps=18_000.0,
                          pipeline_cpu_us_per_record={"worker": 59.4, "broker": 3.4})  # fmt: skip
    aged = AgedFigures(history_days=7, history_records=396_000, records=60_100, history_dates=["2026-11-02"],
                       measured_dates=["2026-11-09"], aged_pipeline_rps=30_000.0)  # fmt: skip
    steps = (DetectionFigures(19.9, 23.6), DetectionFigures(31.25))
    run = {"shape": "embedded", "offered_rps": 10_000, "achieved_rps": 9_990, "probes": 10,
           "probes_delivered": 10, "latency_p50_ms": 300.0, "latency_p99_ms": 400.0,
           "peak_rss_mb": {"run": 560.0}, "state_bytes_per_record": 900}  # fmt: skip
    result = assemble(BenchConfig.for_run(True), base, 5_000.0, scaled, 240, aged, [run], steps)
    assert result["detection_cpu_us_per_record"] == {"fresh": 19.9, "aged": 23.6, "messages_per_take": 54}
    assert result["scale_10x"]["detection_cpu_us_per_record"]["fresh"] == 31.25
    assert result["scale_10x"]["detection_cpu_us_per_record"]["aged"] is None
    table = dict((name, (a, b)) for name, a, b in rows(result))
    assert table["CPU µs per record, the detectors' steps alone (in-process): fresh / aged"] == (
        "19.9 / 23.6",
        "31.2",
    )
    assert table["worker CPU µs per record less those steps"] == ("10.6", "28.1")
    without = assemble(BenchConfig.for_run(True), base, 5_000.0, scaled, 240, aged, [run])
    assert without["detection_cpu_us_per_record"] is None
    table = dict((name, (a, b)) for name, a, b in rows(without))
    assert table["CPU µs per record, the detectors' steps alone (in-process): fresh / aged"] == ("—", "—")
    assert table["worker CPU µs per record less those steps"] == ("—", "—")
