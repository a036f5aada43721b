"""`fundwatch`: one command with a subcommand per process and tool (CONTRACT.md §1)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import date, datetime
from datetime import time as dt_time
from pathlib import Path

from models.thresholds import ThresholdError, load_thresholds
from schemas.fields import BEIJING
from services.config import DEFAULT_HTTP_PORTS, ConfigError, Settings
from services.replay.command import add_parser as add_replay_parser

DESCRIPTION = """\
FundWatch watches the money of internet-finance institutions (P2P lending, crowdfunding, payment
institutions, online asset management) from the records their custody banks push, and raises
early warnings to regulators' monitoring desks.

Configuration comes from environment variables; the flags below override them:
  FUNDWATCH_KAFKA_BOOTSTRAP       host:port of Kafka (default: the embedded broker of `run`)
  FUNDWATCH_CLICKHOUSE_URL        clickhouse://user:pass@host:9000/db or chdb:///path
                                  (default chdb://<data-dir>/chdb)
  FUNDWATCH_ADMIN_TOKEN           the bootstrap admin bearer token (default: generated once,
                                  printed, kept in <data-dir>/admin-token)
  FUNDWATCH_HTTP_PORT             HTTP port (default 8080 for run and gateway, 8081 for
                                  worker, 8082 for dispatcher: each kind its own on one host)
  FUNDWATCH_DATA_DIR              where the embedded stack keeps its data (default ./var)
  FUNDWATCH_PARTITIONS            partitions of the records topic (default 4)
  FUNDWATCH_WEBHOOK_RETRY_BASE_S  first webhook retry delay in seconds (default 5); later ones
                                  double, with jitter, up to an hour apart
  FUNDWATCH_WEBHOOK_RETRY_WINDOW_S  how long a webhook message is retried before it is
                                  dead-lettered (default 86400: a day)
  FUNDWATCH_WEBHOOK_TIMEOUT_S     how long a subscriber may take to answer (default 10)
  FUNDWATCH_WEBHOOK_CONCURRENCY   requests in flight per subscriber (default 4)
  FUNDWATCH_WEBHOOK_ALLOW_PRIVATE 1 lets subscriber URLs resolve to loopback or private
                                  addresses (default 0; `run` sets 1 unless it is given)
  FUNDWATCH_NOTIFY_INTERVAL_S     a subscriber hears of a change of an alert's figures alone at
                                  most once per this many seconds (default 300); a new alert,
                                  a severity or status change go out at once
  FUNDWATCH_MAX_FUTURE_S          how far after the gateway's clock a record's booked_at or
                                  as_of may lie before it is rejected (default 3600)
  FUNDWATCH_LOG_LEVEL, FUNDWATCH_LOG_FORMAT   INFO / text by default; json for log shippers
"""


def _common(parser: argparse.ArgumentParser, process: str, intake: bool = False) -> None:
    parser.add_argument("--data-dir", type=Path, help="data directory (FUNDWATCH_DATA_DIR, default ./var)")
    parser.add_argument("--kafka-bootstrap", help="Kafka host:port (FUNDWATCH_KAFKA_BOOTSTRAP)")
    parser.add_argument("--clickhouse-url", help="clickhouse://… or chdb://… (FUNDWATCH_CLICKHOUSE_URL)")
    what = "API" if process in {"run", "gateway"} else "probes and metrics"
    parser.add_argument(
        "--http-port", type=int,
        help=f"{what} port (FUNDWATCH_HTTP_PORT, default {DEFAULT_HTTP_PORTS[process]})",
    )  # fmt: skip
    parser.add_argument("--http-host", help=f"{what} address (FUNDWATCH_HTTP_HOST, default 127.0.0.1)")
    if intake:
        parser.add_argument(
            "--max-future-s", type=int, metavar="SECONDS",
            help="reject records dated more than this after the gateway's clock (FUNDWATCH_MAX_FUTURE_S, default 3600)",
        )  # fmt: skip


def _notify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notify-interval-s", type=float, metavar="SECONDS",
        help="at most one figures-only update per alert and subscriber this often (FUNDWATCH_NOTIFY_INTERVAL_S, default 300)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fundwatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="the embedded stack: broker, chDB, workers, API and a simulated province",
        description="Start the embedded stack in one process: the Tansu broker as a child process on a free "
        "loopback port, chDB under --data-dir, the Faust workers and the HTTP API; unless --no-simulator, "
        "a synthetic province is pushed through the API. Ctrl-C or SIGTERM stops everything.",
    )
    _common(run, "run", intake=True)
    _notify(run)
    run.add_argument("--no-simulator", action="store_true", help="start empty, without the built-in feed")

    worker = sub.add_parser(
        "worker",
        help="Faust stream workers against external Kafka and ClickHouse",
        description="Consume the records topic, keep per-account state and write raw records and aggregates "
        "to ClickHouse. Run as many as there are partitions to scale out. Serves /healthz, /readyz and "
        "/metrics on --http-port.",
    )
    _common(worker, "worker")

    gateway = sub.add_parser(
        "gateway",
        help="the HTTP API against external Kafka and ClickHouse",
        description="Serve the HTTP API: tokens, reference data and batch intake, publishing to Kafka.",
    )
    _common(gateway, "gateway", intake=True)

    dispatcher = sub.add_parser(
        "dispatcher",
        help="the webhook dispatcher against external Kafka and ClickHouse",
        description="Read the alerts topic and deliver alerts to the subscriptions whose filter they pass, "
        "as the notification policy decides (new alerts, severity and status changes at once; figures "
        "at most once per --notify-interval-s), as a CloudEvent signed per Standard Webhooks, with "
        "account numbers masked. Failed "
        "deliveries are retried with exponential backoff and jitter for FUNDWATCH_WEBHOOK_RETRY_WINDOW_S, "
        "then dead-lettered; pending retries are kept in ClickHouse and resume after a restart. Serves "
        "/healthz, /readyz and /metrics on --http-port.",
    )
    _common(dispatcher, "dispatcher")
    _notify(dispatcher)

    simulate = sub.add_parser(
        "simulate",
        help="push (or write) a synthetic province's custody-bank data",
        description="Build a synthetic province (institutions of every type, custody banks, investors, "
        "borrowers, products) and push its records through a running API with each bank's own token, "
        "or write them to files with --out.",
    )
    simulate.add_argument(
        "--api", default=None, help="API base URL (default http://127.0.0.1:$FUNDWATCH_HTTP_PORT)"
    )
    simulate.add_argument(
        "--admin-token", default=None, help="admin token (default FUNDWATCH_ADMIN_TOKEN or ./var/admin-token)"
    )
    simulate.add_argument("--seed", type=int, default=7, help="random seed of the province (default 7)")
    simulate.add_argument(
        "--institutions", type=int, default=24, help="institutions in the province (default 24)"
    )
    simulate.add_argument("--rate", type=float, default=500.0, help="records per second pushed (default 500)")
    simulate.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    simulate.add_argument("--max-records", type=int, default=None, help="stop after this many records")
    simulate.add_argument(
        "--wait-processed", type=float, default=0.0, metavar="SECONDS",
        help="after pushing, wait up to this long for the workers to process everything; print the end-to-end rate",
    )  # fmt: skip
    simulate.add_argument(
        "--violations",
        action="store_true",
        help="with --out: inject labelled violations of every typology and hard negatives (ground truth in labels.jsonl)",
    )
    simulate.add_argument(
        "--patterns", type=int, default=0, metavar="N",
        help="with --out and --violations: also N of each AMLSim-style laundering pattern (cycle, scatter-gather, "
        "gather-scatter, stack) among quiet customers' accounts, labelled `anomaly`, and N of each lawful "
        "look-alike (payroll run, family circle, rent collection) as hard negatives (default 0: none, the feed "
        "exactly as without the option)",
    )  # fmt: skip
    simulate.add_argument("--batch-records", type=int, default=1000, help="records per batch (default 1000)")
    simulate.add_argument(
        "--out", type=Path, default=None, help="write reference and batch files here instead of pushing"
    )
    simulate.add_argument(
        "--hours", type=float, default=24.0, help="with --out: simulated hours to write (default 24)"
    )

    evaluate = sub.add_parser(
        "eval",
        help="precision / recall / F1 of the detectors on a labelled simulated province",
        description="Simulates a province with labelled violations and hard negatives, then, for each "
        "variant of what the province looks like (optional fields left out; banks pushing in real time, "
        "in day-end files, late, bank by bank, a day re-sent), runs it through the detectors and prints "
        "precision, recall, F1, hard negatives flagged and the alert delay in event time per typology. "
        "The direct engine runs the worker's steps in-process (about a minute a variant for 8 simulated "
        "days on an idle 2-vCPU machine, 2-4 on a shared one; all seven variants about 8 minutes); the "
        "pipeline engine pushes through the real stack (a Tansu broker and `fundwatch run` as child "
        "processes, chDB in a temporary directory; about 5 minutes a variant).",
    )
    evaluate.add_argument(
        "--seed", type=int, default=20261125, help="province and violation seed (default 20261125)"
    )
    evaluate.add_argument(
        "--hours", type=float, default=192.0,
        help="simulated hours (default 192: rapid growth needs some days of trend)",
    )  # fmt: skip
    evaluate.add_argument(
        "--institutions", type=int, default=24, help="institutions in the province (default 24)"
    )
    evaluate.add_argument(
        "--variants", default="all",
        help="comma-separated variants, or all (default): baseline, sparse, untagged, day-end, late-banks, "
        "bank-by-bank, resent-day",
    )  # fmt: skip
    evaluate.add_argument(
        "--engine", choices=("direct", "pipeline"), default="direct",
        help="direct: the worker's steps in-process (default); pipeline: the real stack, as in production",
    )  # fmt: skip
    evaluate.add_argument(
        "--thresholds", type=Path, default=None, metavar="FILE",
        help="detect with this thresholds file (a TOML with a version) instead of FUNDWATCH_THRESHOLDS_FILE "
        "or models/thresholds.toml; the same file `fundwatch replay --thresholds` takes",
    )  # fmt: skip
    evaluate.add_argument(
        "--anomaly", action="store_true",
        help="measure the learned anomaly typology instead: simulate a province of --train-seed with --patterns "
        "AMLSim-style patterns and look-alikes, fit the model on it (as `fundwatch train` does), then run each "
        "held-out province (--held-out seeds, same size) through the detectors with that model and the desks' "
        "budget, and print recall per pattern shape, precision at the budget, anomaly alerts per 100 accounts "
        "per day and hard negatives flagged (docs/detection.md defines them); about 1.5 minutes per province "
        "of 8 days on an idle machine",
    )  # fmt: skip
    evaluate.add_argument(
        "--train-seed",
        type=int,
        default=101,
        help="with --anomaly: the training province's seed (default 101)",
    )
    evaluate.add_argument(
        "--held-out", default="202,303", metavar="SEEDS",
        help="with --anomaly: comma-separated seeds of the provinces scored (default 202,303); none may be "
        "the training seed",
    )  # fmt: skip
    evaluate.add_argument(
        "--patterns", type=int, default=4, metavar="N",
        help="with --anomaly: patterns of each shape and look-alikes of each kind per province (default 4)",
    )  # fmt: skip
    evaluate.add_argument(
        "--model-seed", type=int, default=7, help="with --anomaly: the model's random seed (default 7)"
    )
    evaluate.add_argument("--json", type=Path, default=None, help="also write the scores as JSON here")
    evaluate.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown here")
    evaluate.add_argument("--work-dir", type=Path, default=None, help="keep the province, logs and data here")
    add_replay_parser(sub)
    train = sub.add_parser(
        "train",
        help="fit the anomaly model per account role on stored records; writes a versioned artefact",
        description="Reads the raw records of the whole Beijing days in [--since, --until) (and the 14 days "
        "before, as each account's own history) from ClickHouse, folds them per account through the "
        "per-account feature step (models/features, docs/anomaly-features.md), fits one IsolationForest per role "
        "and writes an artefact directory under --out: the model, and artefact.json with the feature-schema "
        "hash, library versions, training window, seed, rows per role, score quantiles and a content digest. "
        "The same records and seed give the same digest. --out's CURRENT file then names the new artefact. "
        "It only reads ClickHouse.",
    )
    train.add_argument(
        "--since", required=True, metavar="TIME",
        help="first day, included: a date (Beijing midnight) or RFC 3339 with an offset",
    )  # fmt: skip
    train.add_argument(
        "--until", required=True, metavar="TIME",
        help="end, excluded: a date (Beijing midnight) or RFC 3339 with an offset",
    )  # fmt: skip
    train.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="where artefacts are kept (default $FUNDWATCH_MODEL_DIR/anomaly, else <data-dir>/models/anomaly: "
        "where workers look for them)",
    )  # fmt: skip
    train.add_argument("--seed", type=int, default=7, help="the model's random seed (default 7)")
    train.add_argument(
        "--clickhouse-url", "--storage", dest="clickhouse_url", metavar="URL",
        help="clickhouse://… or chdb://… to read (FUNDWATCH_CLICKHOUSE_URL, default chdb://<data-dir>/chdb)",
    )  # fmt: skip
    train.add_argument(
        "--data-dir",
        type=Path,
        help="the data directory of `fundwatch run` (FUNDWATCH_DATA_DIR, default ./var)",
    )
    train.add_argument(
        "--chunk-records", type=int, default=200_000, metavar="N",
        help="records read from ClickHouse at a time (default 200,000)",
    )  # fmt: skip
    train.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    bench = sub.add_parser(
        "bench",
        help="the benchmark suite: raw ceiling, pipeline, naive Faust, gateway, latency, memory",
        description="Measures, on one Tansu broker and with the same simulated records: the raw ceiling "
        "(consume + typed decode only), the full pipeline's sustained rate (a `fundwatch worker` over a "
        "backlog: every detector, Faust table, ClickHouse), the same rate with a week of the province's state "
        "already held (aged pipeline), the naive Faust baseline (one record per "
        "message, one table update per record) and one gateway's HTTP intake rate; then the push-to-webhook "
        "latency of probe alerts at a fixed offered load, on the production shape (gateway, worker and "
        "dispatcher processes on a local clickhouse-server, when one is installed) and on `fundwatch run`, "
        "the state the worker holds and writes, the detectors' steps alone on the same records (in-process, "
        "no I/O: the part of the worker's CPU that is detection), and each process's peak "
        "memory, all again for a province with about ten times the accounts. Shows its progress and "
        "ends with a table; docs/benchmarks.md explains the figures.",
    )
    bench.add_argument("--quick", action="store_true", help="a smaller run that ends within 5 minutes")
    bench.add_argument(
        "--json", type=Path, default=None, help="also write the figures as one JSON object here"
    )
    bench.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown here")
    bench.add_argument(
        "--records",
        type=int,
        default=None,
        help="records per province (default 300,000; 60,000 with --quick)",
    )
    bench.add_argument("--offered-rps", type=float, default=None,
                       help="offered load of the latency phase (default: a quarter of the measured pipeline rate)")  # fmt: skip
    bench.add_argument("--seed", type=int, default=None, help="seed of the simulated provinces")
    bench.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the logs and data of the run in a directory of its own (run-<time>-...) under this one",
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        process=args.command,
        data_dir=getattr(args, "data_dir", None),
        kafka_bootstrap=getattr(args, "kafka_bootstrap", None),
        clickhouse_url=getattr(args, "clickhouse_url", None),
        http_port=getattr(args, "http_port", None),
        http_host=getattr(args, "http_host", None),
        max_future_s=getattr(args, "max_future_s", None),
        notify_interval_s=getattr(args, "notify_interval_s", None),
    )


def _simulate(args: argparse.Namespace) -> int:
    import asyncio

    from services.logs import setup_logging
    from services.simulator import build_province, plan_violations, run_simulation, write_files

    settings = Settings.from_env()
    setup_logging(settings.log_level, settings.log_format)
    if args.patterns < 0:
        print("fundwatch simulate: --patterns must not be negative", file=sys.stderr)
        return 2
    if args.patterns and not (args.out is not None and args.violations):
        print("fundwatch simulate: --patterns needs --out and --violations (labelled files)", file=sys.stderr)
        return 2
    if args.out is not None:
        province = build_province(args.seed, args.institutions)
        plan = (
            plan_violations(province, args.seed, days=args.hours / 24, patterns=args.patterns)
            if args.violations
            else None
        )
        write_files(province, args.out, hours=args.hours, seed=args.seed, violations=plan)
        print(
            f"written to {args.out}"
            + (" with labelled violations (labels.jsonl, violations.json)" if plan else "")
        )
        return 0
    token = args.admin_token or settings.admin_token
    if not token:
        kept = settings.data_dir / "admin-token"
        if not kept.exists():
            print("fundwatch simulate: give --admin-token or FUNDWATCH_ADMIN_TOKEN", file=sys.stderr)
            return 2
        token = kept.read_text(encoding="utf-8").strip()
    api = args.api or f"http://127.0.0.1:{settings.http_port}"
    stats = asyncio.run(
        run_simulation(
            api, token, seed=args.seed, institutions=args.institutions, rate=args.rate,
            duration_s=args.duration, max_records=args.max_records, progress=True,
            wait_processed_s=args.wait_processed, batch_records=args.batch_records,
        )
    )  # fmt: skip
    print(
        f"pushed={stats.pushed} accepted={stats.accepted} duplicates={stats.duplicates} rejected={stats.rejected} "
        f"push_rate={stats.pushed / max(stats.elapsed, 1e-9):.0f}/s"
    )
    if stats.drained_after:
        print(
            f"processed end to end: {stats.accepted} records in {stats.drained_after:.1f} s = "
            f"{stats.accepted / stats.drained_after:.0f} records/s"
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from services.evaluation import markdown_variants, print_result, print_summary, run_eval
    from services.logs import setup_logging
    from services.simulator.variants import selected

    settings = Settings.from_env()
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, settings.log_format)
    if args.hours <= 0:
        print("fundwatch eval: --hours must be above 0", file=sys.stderr)
        return 2
    try:
        variants = selected(args.variants)
    except ValueError as error:
        print(f"fundwatch eval: {error}", file=sys.stderr)
        return 2
    if args.thresholds is not None:
        load_thresholds(path=args.thresholds)  # a bad file stops the eval before it simulates, named
    if args.anomaly:
        return _eval_anomaly(args)
    results = run_eval(
        args.seed, args.hours, institutions=args.institutions, work_dir=args.work_dir,
        keep=args.work_dir is not None, variants=variants, engine=args.engine, on_result=print_result,
        thresholds_file=args.thresholds,
    )  # fmt: skip
    if len(results) > 1:
        print_summary(results)
    if args.json is not None:
        doc = [result.to_builtins() for result in results]
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", "utf-8")
    if args.markdown is not None:
        args.markdown.write_text(markdown_variants(results), "utf-8")
    return 0


def _eval_anomaly(args: argparse.Namespace) -> int:
    from services.anomaly_evaluation import markdown_table, print_result, run_anomaly_eval

    try:
        seeds = [int(part) for part in args.held_out.split(",") if part.strip()]
    except ValueError:
        print(
            f"fundwatch eval: --held-out must be comma-separated seeds, got {args.held_out!r}",
            file=sys.stderr,
        )
        return 2
    if not seeds or args.train_seed in seeds or args.patterns < 1:
        print("fundwatch eval: --anomaly needs held-out seeds other than --train-seed and --patterns of at least 1",
              file=sys.stderr)  # fmt: skip
        return 2
    results = run_anomaly_eval(
        seeds, args.train_seed, args.hours, institutions=args.institutions, patterns=args.patterns,
        model_seed=args.model_seed, work_dir=args.work_dir, keep=args.work_dir is not None,
        thresholds_file=args.thresholds, on_result=print_result,
    )  # fmt: skip
    if args.json is not None:
        doc = [result.to_builtins() for result in results]
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", "utf-8")
    if args.markdown is not None:
        args.markdown.write_text(markdown_table(results), "utf-8")
    return 0 if all(result.score.meets() for result in results) else 1


def _replay_time(text: str, flag: str) -> datetime:
    """An aware datetime from RFC 3339 with an offset, or from a date: midnight of that Beijing
    day, the day the detectors count in (DOMAIN.md, large_value)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), dt_time(0), BEIJING)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} must be RFC 3339 (2026-11-25T00:00:00+08:00) or a date, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise ConfigError(f"{flag} needs an offset (+08:00 or Z), got {text!r}")
    return moment


def _train(args: argparse.Namespace) -> int:
    from services.logs import setup_logging
    from services.progress import StatusLine
    from services.training import TrainingError, train

    settings = Settings.from_env(process="train", data_dir=args.data_dir, clickhouse_url=args.clickhouse_url)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, settings.log_format)
    since, until = _replay_time(args.since, "--since"), _replay_time(args.until, "--until")
    if until <= since:
        raise ConfigError("--until must lie after --since")
    if args.chunk_records < 1:
        raise ConfigError("--chunk-records must be at least 1")
    url = settings.clickhouse_url
    if url.startswith("chdb://") and not Path(url[len("chdb://") :]).is_dir():
        print(f"fundwatch train: no chDB store at {url[len('chdb://') :]} (see --data-dir, --clickhouse-url)",
              file=sys.stderr)  # fmt: skip
        return 2
    out = args.out if args.out is not None else settings.models_dir / "anomaly"
    try:
        with StatusLine("fundwatch train", enabled=not args.no_progress) as status:
            info = train(url, since, until, out, args.seed, status, args.chunk_records)
    except TrainingError as error:
        print(f"fundwatch train: {error}", file=sys.stderr)
        return 1
    print(f"artefact {info.artefact_id} digest {info.digest} at {info.path}")
    for role, rows in sorted(info.rows_per_role.items()):
        print(f"  {role}: {rows:,} account-days")
    for role, rows in sorted(info.skipped_roles.items()):
        print(f"  {role}: skipped, {rows:,} account-days are too few")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from services.bench.report import markdown_table, print_result, write_json
    from services.bench.suite import BenchConfig, run_bench
    from services.logs import setup_logging

    setup_logging("WARNING", "text")
    config = BenchConfig.for_run(
        args.quick, records=args.records, offered_rps=args.offered_rps, seed=args.seed, work_dir=args.work_dir
    )
    result = run_bench(config)
    print_result(result)
    if args.json is not None:
        write_json(result, args.json)
    if args.markdown is not None:
        args.markdown.write_text(markdown_table(result), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in {"run", "worker"}:
            load_thresholds()  # a bad thresholds file or override stops the start, named
        if args.command == "run":
            from services.runner import run_embedded

            settings = _settings(args)
            if "FUNDWATCH_WEBHOOK_ALLOW_PRIVATE" not in os.environ:
                # `fundwatch run` is the local stack: its subscribers may listen on localhost.
                settings = replace(settings, webhook_allow_private=True)
            return run_embedded(settings, simulator=not args.no_simulator)
        if args.command == "worker":
            from services.runner import run_worker

            return run_worker(_settings(args))
        if args.command == "gateway":
            from services.runner import run_gateway

            return run_gateway(_settings(args))
        if args.command == "dispatcher":
            from services.runner import run_dispatcher

            return run_dispatcher(_settings(args))
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "replay":
            from services.replay.command import run as run_replay

            return run_replay(args, _replay_time)
        if args.command == "train":
            return _train(args)
        return _bench(args)
    except (ConfigError, ThresholdError) as error:
        print(f"fundwatch: configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
