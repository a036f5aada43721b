"""The `fundwatch replay` command line: its arguments, and the run from them to the printed report
(and the JSON file, and the saved report). services/cli.py hands the subcommand here."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

DESCRIPTION = (
    "Reads the raw records whose event time (booked_at, as_of) lies in [--from, --until) and the reference "
    "data from ClickHouse, rebuilds the messages the workers took them in and runs the worker's detection "
    "steps over them in-process twice: the baseline, with the current thresholds (FUNDWATCH_THRESHOLDS_FILE "
    "or models/thresholds.toml) and the anomaly model the workers serve (the artefact named by "
    "$FUNDWATCH_MODEL_DIR/anomaly/CURRENT, default <data-dir>/models, if there is one), and the candidate, "
    "with --thresholds and --model (each the baseline's when not given). So a candidate may be another "
    "thresholds file, another model version, or both. Prints which thresholds and which artefact (id and "
    "digest) each run used, the alerts gained, lost and graded differently per typology, then the "
    "institutions and regions that moved most, then the alerts themselves (id, typology, institution, "
    "region, severity, amount); --json writes all of it. Without --save nothing is written to ClickHouse; "
    "with --save only the report is, in tables of its own (replays, replay_alerts, replay_counts), for "
    "GET /v1/replays and the console's replay page. Live alerts, their history and deliveries stay as they "
    "were either way. Both runs start with empty detector states at --from and use the reference data as "
    "it stands now; the desks' daily budget of anomaly alerts is not applied (as in `fundwatch eval`). A "
    "chDB directory can be open in one process only: stop `fundwatch run` first, or point --clickhouse-url "
    "at a ClickHouse server."
)
MODEL_HELP = (
    "an artefact directory (anomaly-<digest>/), an artefacts directory (the artefact its CURRENT names, as "
    "`fundwatch train --out` leaves it), a models directory (its anomaly/CURRENT), or none"
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    replay = sub.add_parser(
        "replay",
        help="the detectors again over stored records of a period with other thresholds or another model; "
        "writes nothing unless --save",
        description=DESCRIPTION,
    )
    replay.add_argument(
        "--from", dest="since", required=True, metavar="TIME",
        help="start of the period, included: RFC 3339 with an offset, or a date (midnight Beijing time)",
    )  # fmt: skip
    replay.add_argument(
        "--until", required=True, metavar="TIME",
        help="end of the period, excluded: RFC 3339 with an offset, or a date (midnight Beijing time)",
    )  # fmt: skip
    replay.add_argument(
        "--thresholds", type=Path, default=None, metavar="FILE",
        help="the candidate thresholds file (a TOML with a version, like models/thresholds.toml); without "
        "it the candidate has the baseline's",
    )  # fmt: skip
    replay.add_argument(
        "--model", default=None, metavar="DIR_OR_ARTEFACT",
        help=f"the candidate's anomaly model: {MODEL_HELP}; without it the candidate has the baseline's",
    )  # fmt: skip
    replay.add_argument(
        "--baseline-model", default=None, metavar="DIR_OR_ARTEFACT",
        help=f"the baseline's anomaly model: {MODEL_HELP}; default: the artefact the workers serve "
        "($FUNDWATCH_MODEL_DIR/anomaly/CURRENT, default <data-dir>/models), or none when there is none",
    )  # fmt: skip
    replay.add_argument(
        "--clickhouse-url", "--storage", dest="clickhouse_url", metavar="URL",
        help="clickhouse://… or chdb://… to read (FUNDWATCH_CLICKHOUSE_URL, default chdb://<data-dir>/chdb)",
    )  # fmt: skip
    replay.add_argument(
        "--data-dir",
        type=Path,
        help="the data directory of `fundwatch run` (FUNDWATCH_DATA_DIR, default ./var)",
    )
    replay.add_argument("--json", type=Path, default=None, help="also write the whole report as JSON here")
    replay.add_argument(
        "--save", action="store_true",
        help="also keep the report in ClickHouse (tables replays, replay_alerts, replay_counts, which a "
        "FundWatch process of this version creates at start) and print its id: GET /v1/replays/{id} and "
        "the console's 回放 Replay page show it, a desk its own region's rows",
    )  # fmt: skip
    replay.add_argument(
        "--limit",
        type=int,
        default=20,
        help="alerts listed in the terminal per list (default 20; --json has all)",
    )
    replay.add_argument(
        "--chunk-records", type=int, default=50_000, metavar="N",
        help="records read from ClickHouse at a time (default 50,000): memory against round trips",
    )  # fmt: skip
    return replay


class _Refused(Exception):
    """The command stops: the message goes to stderr, the code is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace, parse_time: Any) -> int:
    """`fundwatch replay`; ``parse_time(text, flag)`` reads --from and --until (services/cli.py)."""
    from models.thresholds import load_thresholds
    from services.config import ConfigError, Settings
    from services.logs import setup_logging

    settings = Settings.from_env(process="replay", data_dir=args.data_dir, clickhouse_url=args.clickhouse_url)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, settings.log_format)
    since, until = parse_time(args.since, "--from"), parse_time(args.until, "--until")
    if until <= since:
        raise ConfigError("--until must lie after --from")
    if args.chunk_records < 1 or args.limit < 0:
        raise ConfigError("--chunk-records must be at least 1 and --limit at least 0")
    baseline = load_thresholds()
    candidate = load_thresholds(path=args.thresholds) if args.thresholds is not None else baseline
    try:
        models = _models(args, settings.models_dir)
        return _replay(args, settings.clickhouse_url, since, until, (baseline, candidate), models)
    except _Refused as refused:
        print(f"fundwatch replay: {refused}", file=sys.stderr)
        return refused.code


def _models(args: argparse.Namespace, models_dir: Path) -> tuple[Any, Any]:
    """The baseline's and the candidate's anomaly models (None: no model), each loaded once."""
    from services.replay.models import ModelChoiceError, choose, default_baseline, load_model

    try:
        baseline_dir = choose(args.baseline_model, default_baseline(models_dir))
        candidate_dir = choose(args.model, baseline_dir)
        baseline = load_model(baseline_dir) if baseline_dir is not None else None
        if (
            candidate_dir is not None
            and baseline_dir is not None
            and candidate_dir.resolve() == baseline_dir.resolve()
        ):
            candidate = baseline  # one artefact, loaded once
        else:
            candidate = load_model(candidate_dir) if candidate_dir is not None else None
    except ModelChoiceError as error:
        raise _Refused(f"{error} (see --model, --baseline-model)", 2) from None
    return baseline, candidate


def _replay(
    args: argparse.Namespace, url: str, since: datetime, until: datetime, thresholds: tuple, models: tuple
) -> int:
    from services.replay import run_replay
    from services.replay.render import print_report, write_json
    from services.storage import StorageError, open_storage

    if url.startswith("chdb://") and not Path(url[len("chdb://") :]).is_dir():
        # opening chDB on a missing directory would create an empty store: a write, and no answer
        raise _Refused(f"no chDB store at {url[len('chdb://') :]} (see --data-dir, --clickhouse-url)", 2)
    try:
        storage = open_storage(url)
    except Exception as error:  # chDB raises plain errors when another process holds its directory
        raise _Refused(
            f"cannot open {url.partition('://')[0]} storage: {error} (a chDB directory can be open in one "
            "process only: stop `fundwatch run` first, or read a ClickHouse server)", 1,
        ) from None  # fmt: skip
    try:
        report = run_replay(
            storage, since, until, thresholds[0], thresholds[1],
            candidate_file=str(args.thresholds) if args.thresholds is not None else None,
            baseline_file=os.environ.get("FUNDWATCH_THRESHOLDS_FILE") or None,
            baseline_model=models[0], candidate_model=models[1], chunk_records=args.chunk_records,
        )  # fmt: skip
        print_report(report, limit=args.limit)
        if args.json is not None:
            write_json(report, args.json)
        print(_saved(storage, report) if args.save else "Nothing was written to ClickHouse.")
    except StorageError as error:
        raise _Refused(str(error), 1) from None
    finally:
        storage.close()
    return 0


def _saved(storage: Any, report: Any) -> str:
    from services.replay.store import save_report

    replay_id = save_report(storage, report)
    return (
        f"Saved as replay {replay_id} (GET /v1/replays/{replay_id}, the console's replay page); nothing else "
        "was written to ClickHouse."
    )
