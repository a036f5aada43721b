"""The command line: every subcommand of CONTRACT.md §1 exists and explains itself."""

from __future__ import annotations

import pytest

from services.cli import build_parser, main

COMMANDS = ("run", "worker", "gateway", "dispatcher", "simulate", "eval", "replay", "train", "bench")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    assert len(capsys.readouterr().out) > 80


def test_top_level_help_names_the_configuration(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    for variable in (
        "FUNDWATCH_KAFKA_BOOTSTRAP",
        "FUNDWATCH_CLICKHOUSE_URL",
        "FUNDWATCH_ADMIN_TOKEN",
        "FUNDWATCH_HTTP_PORT",
    ):
        assert variable in out


def test_bench_help_names_every_figure(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in (
        "raw ceiling",
        "naive Faust",
        "aged pipeline",
        "gateway",
        "latency",
        "--quick",
        "--json",
        "--offered-rps",
    ):
        assert words in out


@pytest.mark.parametrize("command", ["worker", "gateway", "dispatcher"])
def test_production_processes_need_the_kafka_bootstrap_named(command, monkeypatch):
    monkeypatch.delenv("FUNDWATCH_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main([command])
    assert "FUNDWATCH_KAFKA_BOOTSTRAP" in str(stopped.value)


def test_a_bad_threshold_override_stops_the_start_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("FUNDWATCH_THRESHOLD__large_value__gold", "1")
    assert main(["worker"]) == 2
    assert "FUNDWATCH_THRESHOLD__large_value__gold" in capsys.readouterr().err


def test_a_bad_setting_stops_the_start_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("FUNDWATCH_HTTP_PORT", "eighty")
    assert main(["gateway"]) == 2
    assert "FUNDWATCH_HTTP_PORT" in capsys.readouterr().err


def test_eval_refuses_a_non_positive_duration(capsys):
    assert main(["eval", "--hours", "0"]) == 2
    assert "--hours" in capsys.readouterr().err


def test_eval_names_a_bad_thresholds_file_before_it_simulates(capsys, tmp_path):
    missing = tmp_path / "missing.toml"
    assert main(["eval", "--thresholds", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_replay_help_says_it_writes_nothing(capsys):
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in (
        "--from",
        "--until",
        "--thresholds",
        "--json",
        "--storage",
        "--data-dir",
        "nothing is written",
    ):
        assert words in out


def test_train_help_names_its_window_artefact_and_seed(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in ("--since", "--until", "--out", "--seed", "--storage", "digest", "It only reads ClickHouse"):
        assert words in out


def test_train_refuses_an_empty_window_and_a_missing_store(tmp_path, capsys):
    assert main(["train", "--since", "2026-11-02", "--until", "2026-11-01", "--data-dir", str(tmp_path)]) == 2
    assert "--until must lie after --since" in capsys.readouterr().err
    assert main(["train", "--since", "2026-11-01", "--until", "2026-11-08", "--data-dir", str(tmp_path)]) == 2
    assert "no chDB store" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "port"), [("run", 8080), ("gateway", 8080), ("worker", 8081), ("dispatcher", 8082)]
)
def test_each_process_kind_listens_on_its_own_port_unless_told(command, port, monkeypatch, capsys):
    from services.cli import _settings

    monkeypatch.delenv("FUNDWATCH_HTTP_PORT", raising=False)
    assert _settings(build_parser().parse_args([command])).http_port == port
    assert _settings(build_parser().parse_args([command, "--http-port", "9009"])).http_port == 9009
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    assert f"default {port}" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["run", "gateway"])
def test_the_intake_processes_take_the_future_allowance(command, monkeypatch):
    from services.cli import _settings

    monkeypatch.delenv("FUNDWATCH_MAX_FUTURE_S", raising=False)
    assert _settings(build_parser().parse_args([command])).max_future_s == 3600
    assert _settings(build_parser().parse_args([command, "--max-future-s", "120"])).max_future_s == 120


def test_simulate_patterns_writes_labelled_patterns(tmp_path, capsys):
    import json

    out = tmp_path / "province"
    argv = ["simulate", "--out", str(out), "--violations", "--patterns", "1", "--hours", "24",
            "--institutions", "7", "--seed", "11"]  # fmt: skip
    assert main(argv) == 0
    plan = json.loads((out / "violations.json").read_text("utf-8"))
    shapes = {p["shape"] for p in plan["patterns"]}
    assert {"cycle", "scatter_gather", "gather_scatter", "stack"} <= shapes
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text("utf-8").splitlines()]
    assert any(label["typology"] == "anomaly" for label in labels)
    assert "--patterns" in _help(["simulate"], capsys)


def test_simulate_patterns_needs_labelled_files_and_a_count(tmp_path, capsys):
    assert main(["simulate", "--patterns", "2"]) == 2
    assert "--violations" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path), "--violations", "--patterns", "-1"]) == 2


def test_eval_anomaly_refuses_the_training_seed_among_the_held_out(capsys):
    assert main(["eval", "--anomaly", "--train-seed", "5", "--held-out", "4,5"]) == 2
    assert "--train-seed" in capsys.readouterr().err
    assert "--held-out" in _help(["eval"], capsys)


def _help(command, capsys) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return capsys.readouterr().out
