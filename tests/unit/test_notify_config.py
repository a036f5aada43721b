"""FUNDWATCH_NOTIFY_INTERVAL_S and --notify-interval-s (CONTRACT.md §5): the notification
interval reaches the dispatcher of `fundwatch dispatcher` and `fundwatch run`."""

from __future__ import annotations

import pytest

from services.cli import _settings, build_parser
from services.config import ConfigError, Settings


def test_the_interval_is_five_minutes_unless_told():
    assert Settings.from_env({}).notify_interval_s == 300.0
    assert Settings.from_env({"FUNDWATCH_NOTIFY_INTERVAL_S": "5"}).notify_interval_s == 5.0
    assert Settings.from_env({"FUNDWATCH_NOTIFY_INTERVAL_S": "0"}).notify_interval_s == 0.0


@pytest.mark.parametrize("raw", ["-1", "soon", "nan"])
def test_an_interval_that_cannot_work_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="FUNDWATCH_NOTIFY_INTERVAL_S"):
        Settings.from_env({"FUNDWATCH_NOTIFY_INTERVAL_S": raw})


@pytest.mark.parametrize("command", ["dispatcher", "run"])
def test_the_flag_overrides_the_variable(command, monkeypatch):
    monkeypatch.setenv("FUNDWATCH_NOTIFY_INTERVAL_S", "120")
    args = build_parser().parse_args([command, "--notify-interval-s", "7.5"])
    assert _settings(args).notify_interval_s == 7.5
    assert _settings(build_parser().parse_args([command])).notify_interval_s == 120.0
    with pytest.raises(ConfigError, match="FUNDWATCH_NOTIFY_INTERVAL_S"):
        _settings(build_parser().parse_args([command, "--notify-interval-s", "-3"]))
