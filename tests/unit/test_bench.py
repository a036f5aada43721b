"""The benchmark's pure parts: its workload, percentiles and report. The measuring itself runs
real processes and is `fundwatch bench`'s job, not a test's."""

from __future__ import annotations

import msgspec
import pytest

from services.bench.report import markdown_table, rows
from services.bench.suite import BenchConfig, _percentile
from services.bench.workload import build_workload, probe_account, probe_batches, probe_reference


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
    assert _percentile(values, q) == expected


def test_quick_runs_are_smaller_and_overrides_win():
    quick, full = BenchConfig.for_run(True), BenchConfig.for_run(False)
    assert quick.records < full.records and quick.latency_seconds < full.latency_seconds
    assert BenchConfig.for_run(True, records=1234, offered_rps=None).records == 1234


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
