"""`fundwatch eval --anomaly`: the learned `anomaly` typology measured on provinces it was not
trained on.

1. A training province (``train_seed``, with AMLSim-style patterns and look-alikes: the model
   learns what is usual from days that hold some of them, as it would in the field) is simulated;
   its records are folded per account exactly as `fundwatch train` folds the records it reads
   from ClickHouse (services/training.fold_accounts), one model is fitted per role and the
   artefact is written under the work directory.
2. Each held-out province (another seed: other institutions, accounts and patterns) goes through
   the worker's steps in-process (services/simulator/pipeline.py) with that artefact in the
   DetectContext, as a worker serves it, and with the desks' budget
   (streams/anomaly_budget.AnomalyBudgetGate) over the alerts of each message.
3. models/anomaly_evaluation.py scores the anomaly alerts that got through against the patterns.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models.anomaly_evaluation import AnomalyScore, alerted_days, pattern_days, score_patterns
from models.anomaly_serving import AnomalyModels
from models.detectors import DetectContext, StaticReferences
from models.evaluation import fold_alert_events
from models.features.kinds import kind_map
from models.thresholds import Thresholds, load_thresholds
from schemas.messages import TxnRecord
from services.anomaly_store import load_artefact
from services.evaluation import Province, _variant_input, simulate
from services.progress import StatusLine
from services.simulator.pipeline import InProcessPipeline, decode_records
from services.simulator.variants import VARIANTS, account_roles
from services.training import ArtefactInfo, collect_from_records, training_period, write_trained
from streams.anomaly_budget import AnomalyBudgetGate, accounts_by_scope, bank_lookup

DEFAULT_PATTERNS = 4  # of each shape and look-alike per province


@dataclass
class AnomalyEvalResult:
    seed: int
    train_seed: int
    hours: float
    records: int
    artefact: ArtefactInfo
    score: AnomalyScore
    raised: int  # anomaly alerts the detector raised, before the budget
    elapsed_s: float

    def to_builtins(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "train_seed": self.train_seed,
            "hours": self.hours,
            "records": self.records,
            "artefact": self.artefact.artefact_id,
            "digest": self.artefact.digest,
            "raised_before_budget": self.raised,
            "elapsed_s": round(self.elapsed_s, 1),
            **self.score.to_builtins(),
        }


def _transactions(province: Province) -> list[TxnRecord]:
    records = (r for batches in province.batches.values() for b in batches for r in b["records"])
    return [r for r in decode_records(records) if isinstance(r, TxnRecord)]


def train_province(province: Province, out_dir: Path, model_seed: int, status: StatusLine) -> ArtefactInfo:
    """The artefact of a model fitted on every whole Beijing day of ``province``."""
    since = datetime.fromtimestamp(province.start, UTC)
    period = training_period(since, since + timedelta(hours=province.hours))
    status.update(f"training on seed {province.seed}: folding records", force=True)
    roles = account_roles(province.reference["accounts"])
    kinds = kind_map(province.reference["accounts"])
    collected = collect_from_records(_transactions(province), roles, period, kinds)
    return write_trained(collected, period, out_dir, model_seed, status)


def _patterns(work: Path) -> list[dict[str, Any]]:
    return json.loads((work / "violations.json").read_text("utf-8")).get("patterns") or []


def evaluate_province(
    province: Province,
    patterns: list[dict[str, Any]],
    model: AnomalyModels,
    thresholds: Thresholds,
    status: StatusLine,
) -> tuple[AnomalyScore, int]:
    """The held-out province through the detectors with ``model`` and the budget; its score and
    how many anomaly alerts the detector raised before the budget."""
    reference, _, order = _variant_input(province, VARIANTS["baseline"])
    ctx = DetectContext(
        StaticReferences(
            reference["accounts"],
            reference["institutions"],
            reference["related-parties"],
            reference["products"],
        ),
        thresholds,
        anomaly_model=model,
    )
    accounts = {a["account_id"]: a for a in reference["accounts"]}
    institutions = {i["institution_id"]: i for i in reference["institutions"]}
    counts = accounts_by_scope(accounts, institutions)
    gate = AnomalyBudgetGate(thresholds, lambda: counts, bank_of=bank_lookup(accounts))
    raised: set[str] = set()

    def budget(changed: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        raised.update(alert.alert_id for _, alert in changed if alert.typology == "anomaly")
        return gate(changed)

    pipe = InProcessPipeline(ctx, gate=budget)
    pipe.review(i["institution_id"] for i in reference["institutions"])
    total = sum(len(b["records"]) for b in order)
    for batch in order:
        pipe.push(batch)
        status.update(f"seed {province.seed}: {pipe.records:,}/{total:,} records through the detectors")
    alerts = [a.data for a in fold_alert_events(pipe.events)]
    found = pattern_days(patterns, accounts)
    return score_patterns(found, alerted_days(alerts), len(accounts), province.hours / 24), len(raised)


def run_anomaly_eval(
    seeds: list[int],
    train_seed: int,
    hours: float,
    institutions: int = 24,
    patterns: int = DEFAULT_PATTERNS,
    model_seed: int = 7,
    work_dir: Path | None = None,
    keep: bool = False,
    progress: bool = True,
    thresholds_file: Path | None = None,
    on_result: Any = None,
) -> list[AnomalyEvalResult]:
    """Train on the province of ``train_seed``, score each province of ``seeds`` (none of them
    ``train_seed``). Blocking; a few minutes per province of 8 days."""
    if train_seed in seeds:
        raise ValueError("a held-out seed must not be the training seed")
    work = Path(work_dir or tempfile.mkdtemp(prefix="fundwatch-eval-anomaly-"))
    work.mkdir(parents=True, exist_ok=True)
    thresholds = load_thresholds(path=thresholds_file)
    results = []
    try:
        with StatusLine("eval --anomaly", progress) as status:
            trained = simulate(train_seed, hours, institutions, work / f"train-{train_seed}", status,
                               patterns=patterns)  # fmt: skip
            info = train_province(trained, work / "models", model_seed, status)
            loaded = load_artefact(Path(info.path))
            model = AnomalyModels(info.artefact_id, info.digest, loaded.models)
            del trained
            for seed in seeds:
                began = time.monotonic()
                out = work / f"eval-{seed}"
                province = simulate(seed, hours, institutions, out, status, patterns=patterns)
                score, raised = evaluate_province(province, _patterns(out), model, thresholds, status)
                result = AnomalyEvalResult(
                    seed, train_seed, hours, province.records, info, score, raised, time.monotonic() - began
                )
                results.append(result)
                if on_result is not None:
                    on_result(result)
        return results
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def markdown_table(results: list[AnomalyEvalResult]) -> str:
    """One row per held-out seed: recall per shape, overall recall, precision at the budget, the
    alert rate and the hard negatives flagged."""
    shapes = sorted({name for r in results for name, s in r.score.shapes.items() if s.kind == "positive"})
    head = ["held-out seed", *shapes, "recall", "precision at the budget", "alerts / 100 accounts / day",
            "alerts (raised before the budget)", "hard negatives flagged"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        s = r.score
        cells = [str(r.seed)]
        for name in shapes:
            shape = s.shapes.get(name)
            cells.append(f"{shape.found}/{shape.patterns}" if shape else "—")
        rate = s.per_100_accounts_per_day
        cells += [
            f"{s.found}/{s.positives} = {_pct(s.recall)}", _pct(s.precision),
            "—" if rate is None else f"{rate:.2f}", f"{s.alerts} ({r.raised})",
            f"{s.hard_negatives_flagged}/{s.hard_negatives}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def print_result(result: AnomalyEvalResult) -> None:
    s = result.score
    print(markdown_table([result]), end="")
    print(
        f"seed {result.seed} ({result.records:,} records, {result.hours:g} h), model {result.artefact.artefact_id} "
        f"trained on seed {result.train_seed}; {s.accounts:,} registered accounts; target (recall ≥ 70 %, ≤ 1 "
        f"alert per 100 accounts per day, no hard negative): {'met' if s.meets() else 'not met'}; "
        f"{result.elapsed_s:.0f} s"
    )
    for name, shape in s.shapes.items():
        if shape.missed:
            print(f"  {name} ({shape.kind}) not alerted: {', '.join(shape.missed)}")
