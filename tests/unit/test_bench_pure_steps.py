"""The in-process measure of the pure steps (services/bench/pure_steps.py): it steps the same
messages the pipeline's own push makes, and times fresh pipelines."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import msgspec
import pytest

from services.bench.pure_steps import digests, feed, messages_of, pipeline_factory, size_lines, time_steps
from services.simulator import build_province, plan_violations, write_files


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("pure")
    built = build_province(5, 7)
    files = write_files(
        built, root, hours=24, seed=5, violations=plan_violations(built, 5, days=1), intensity=100
    )
    reference = {
        k: json.loads((root / "reference" / f"{k}.json").read_text("utf-8"))
        for k in ("institutions", "accounts", "products", "related-parties")
    }
    order = [
        json.loads(line)
        for bank in files.records
        for line in (root / "batches" / f"{bank}.jsonl").read_text("utf-8").splitlines()
    ]
    return reference, order


def test_the_messages_are_what_the_pipeline_pushes(province):
    reference, order = province
    make = pipeline_factory(reference)
    pushed = make()
    for batch in order:
        pushed.push(batch)
    stepped = make()
    for bank, msg_id, records in messages_of(order):
        stepped.push_message(bank, msg_id, records)
    assert stepped.records == pushed.records > 0
    assert stepped.events == pushed.events
    assert stepped.accounts == pushed.accounts


def _last_figures(events):
    """Each alert's last revision, without when it was written or how often it changed."""
    last = {}
    for event in events:
        last[event["alert_id"]] = {k: v for k, v in event.items() if k not in {"revision", "updated_at"}}
    return last


@pytest.mark.parametrize("take", [3, 54])
def test_messages_taken_together_end_with_the_same_alerts(province, take):
    reference, order = province
    messages = messages_of(order)
    make = pipeline_factory(reference)
    one, many = make(), make()
    feed(one, messages)
    feed(many, messages, take)
    assert many.records == one.records == sum(len(records) for _, _, records in messages)
    assert _last_figures(many.events) == _last_figures(one.events) != {}
    # an alert reported by several messages of a take changes once
    assert len(many.events) <= len(one.events)
    if take > 3:
        assert len(many.events) < len(one.events)
        assert digests(make(), messages) == digests(make(), messages, 1) != digests(make(), messages, take)


def test_each_tenth_is_reported_at_most_once_a_take(province):
    reference, order = province
    messages = messages_of(order)
    calls = {}
    for take in (1, 4, len(messages)):
        seen: list[int] = []
        feed(pipeline_factory(reference)(), messages, take, partial(seen.append, take))
        calls[take] = len(seen)
    assert calls[1] >= 10  # one message at a time: after each tenth
    assert calls[1] >= calls[4] >= calls[len(messages)] == 1  # a take reports the tenths it passed once


def test_each_run_steps_a_fresh_pipeline(province):
    reference, order = province
    messages = messages_of(order)
    times = time_steps(pipeline_factory(reference), messages, repeat=2)
    assert times.records == sum(len(records) for _, _, records in messages)
    assert len(times.cpu_seconds) == len(times.wall_seconds) == 2
    assert times.us_per_record(times.cpu_seconds) > 0
    assert len(times.rss_mb) == 10  # after each tenth of the first run
    taken = time_steps(pipeline_factory(reference), messages, repeat=1, take=8)
    assert taken.records == times.records and len(taken.cpu_seconds) == 1


def test_the_sizes_add_up_to_each_kinds_encoded_states(province):
    reference, order = province
    pipe = pipeline_factory(reference)()
    for bank, msg_id, records in messages_of(order):
        pipe.push_message(bank, msg_id, records)
    lines = size_lines(pipe, largest=2)
    encode = msgspec.json.Encoder().encode
    accounts = sum(len(encode(state)) for state in pipe.accounts.values())
    assert lines[0].startswith(f"accounts: {len(pipe.accounts):,} states, {accounts / 1e6:.2f} MB encoded")
    detectors = {name for state in pipe.accounts.values() for name in state.get("detectors", {})}
    per_detector = lines[1 : 1 + len(detectors)]
    assert {line.split(":")[0].strip() for line in per_detector} == detectors
    sizes = [float(line.split(":")[1].split()[0]) for line in per_detector]
    assert sizes == sorted(sizes, reverse=True)
    assert any(line.startswith(f"institutions: {len(pipe.institutions):,} states") for line in lines)
