"""The garbage collector's settings of the long-running processes (services/collector.py) and
FUNDWATCH_GC_THRESHOLDS."""

from __future__ import annotations

import gc

import pytest

from services import collector
from services.collector import DEFAULT_THRESHOLDS, PYTHON_THRESHOLDS, parse_thresholds, settle
from services.config import ConfigError, Settings


def test_thresholds_default_when_unset_or_empty():
    assert Settings.from_env({}).gc_thresholds == DEFAULT_THRESHOLDS
    assert Settings.from_env({"FUNDWATCH_GC_THRESHOLDS": " "}).gc_thresholds == DEFAULT_THRESHOLDS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1000,10,10", (1000, 10, 10)), (" 20000, 5 ,50 ", (20000, 5, 50)), ("Python", PYTHON_THRESHOLDS)],
)
def test_thresholds_read(raw, expected):
    assert parse_thresholds(raw) == expected
    assert Settings.from_env({"FUNDWATCH_GC_THRESHOLDS": raw}).gc_thresholds == expected


@pytest.mark.parametrize("raw", ["off", "0,10,10", "700,10", "700,10,10,10", "a,b,c", "700,10,99999999"])
def test_bad_thresholds_refused_naming_the_variable_and_the_rule(raw):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"FUNDWATCH_GC_THRESHOLDS": raw})
    assert "FUNDWATCH_GC_THRESHOLDS must be three whole numbers" in str(info.value)


def test_settle_freezes_what_is_loaded_and_sets_the_thresholds():
    before = gc.get_threshold()
    try:
        settle((12_345, 11, 12))
        assert gc.get_threshold() == (12_345, 11, 12)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.fixture
def gc_callbacks_restored():
    """The clock this test adds is taken off again: the rest of the session runs without it."""
    kept = list(gc.callbacks)
    yield
    gc.callbacks[:] = kept


def test_collections_are_timed_by_generation_once_however_often_watched(gc_callbacks_restored):
    from prometheus_client import REGISTRY

    collector.watch_pauses()
    collector.watch_pauses()
    assert sum(type(callback) is collector.PauseClock for callback in gc.callbacks) == 1

    def total() -> float:
        return REGISTRY.get_sample_value("fundwatch_gc_pause_seconds_total", {"generation": "2"}) or 0.0

    before = total()
    garbage = [[] for _ in range(10_000)]
    for i, item in enumerate(garbage):
        item.append(garbage[i - 1])  # cycles, so the full collection has work to do
    del garbage, item
    gc.collect()
    assert total() > before


class Ring:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_survivors_of_a_full_collection_are_frozen_and_walked_again_after_the_period(gc_callbacks_restored):
    import weakref

    now = [0.0]
    try:
        gc.callbacks.append(collector.FreezeSurvivors(every_s=600.0, clock=lambda: now[0]))
        ring = Ring()
        alive = weakref.ref(ring)
        gc.collect()  # a full collection: the ring survives it, and is frozen
        assert gc.get_freeze_count() > 0
        del ring
        gc.collect()
        assert alive() is not None  # garbage, but frozen: not walked
        now[0] = 600.0
        gc.collect()  # the period is over: this one ends by unfreezing everything
        assert gc.get_freeze_count() == 0
        gc.collect()  # and the next walks it all
        assert alive() is None
        assert gc.get_freeze_count() > 0  # frozen again until the next period
    finally:
        gc.unfreeze()


def test_freeze_survivors_is_installed_once(gc_callbacks_restored):
    collector.freeze_survivors()
    collector.freeze_survivors()
    try:
        assert sum(type(callback) is collector.FreezeSurvivors for callback in gc.callbacks) == 1
    finally:
        gc.callbacks[:] = [c for c in gc.callbacks if type(c) is not collector.FreezeSurvivors]
        gc.unfreeze()
