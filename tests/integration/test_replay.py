"""`fundwatch replay` against a real ClickHouse (chDB): a simulated province's day, its reference
data and raw records stored as the gateway and the workers store them, replayed under the default
thresholds and under a lowered large-value line. The replay must write nothing, find nothing new
under the thresholds that made the data, gain large-value reports under the lowered line, and
raise exactly the alerts the in-process eval raises over the same province."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from models.thresholds import DEFAULT_FILE, load_thresholds
from schemas.ddl import DATABASE
from schemas.fields import BEIJING, cents_to_decimal
from schemas.messages import RecordBatchMessage, TxnRecord, partition_for
from schemas.reference import REFERENCE_KINDS
from schemas.validation import convert
from services.cli import main
from services.evaluation import _direct
from services.gateway.reference import _EXTRA_COLUMNS, _column_value
from services.progress import StatusLine
from services.replay import AlertView, run_replay
from services.replay.engine import replay_alerts
from services.simulator import build_province, plan_violations, write_files
from services.simulator.pipeline import PARTITIONS, decode_records
from services.simulator.push import REFERENCE_ORDER
from services.simulator.variants import push_order
from streams.reference import ReferenceView
from streams.rows import RAW_BALANCE_COLUMNS, RAW_TXN_COLUMNS

pytestmark = pytest.mark.integration

SEED = 31
INSTITUTIONS = 8
HOURS = 24.0
INTENSITY = 500.0
# A day of its own, far from any other test's rows in the shared chDB of the run.
AS_OF = date(2031, 5, 12)
START = datetime.combine(AS_OF, time(0), BEIJING)
RECEIVED_FROM = int(START.timestamp()) + 600
LOWERED_LINE = "500000.00"  # non-natural-person transfers, from 2,000,000.00


@dataclass
class Stored:
    reference: dict[str, list[dict[str, Any]]]
    order: list[dict[str, Any]]  # the batches in the order they were received
    records: int


def _store_reference(storage, reference: dict[str, list[dict[str, Any]]], view: ReferenceView) -> None:
    """As the gateway stores an upsert (services/gateway/reference.py), and as workers hold it."""
    for kind in REFERENCE_ORDER:
        spec = REFERENCE_KINDS[kind]
        items = [convert(doc, spec.type) for doc in reference[kind]]
        columns = _EXTRA_COLUMNS[kind]
        rows = []
        for item in items:
            doc = msgspec.json.encode(item)
            rows.append([*(_column_value(item, c) for c in columns), doc.decode("utf-8"), 1])
            view.apply(kind, getattr(item, spec.key).encode("utf-8"), doc)
        storage.insert(f"{DATABASE}.{spec.table}", (*columns, "doc", "version"), rows)


def _raw_rows(message: RecordBatchMessage, view: ReferenceView) -> tuple[list[list[Any]], list[list[Any]]]:
    """The raw_transactions and raw_balances rows a worker writes for one message: each record as
    it came, its message's bank, batch, id and receipt, and its account's institution, role and
    region (streams/rows.py), by column name."""
    txns, balances = [], []
    for r in message.records:
        institution_id, role, region = view.enrich(r.account_id)
        common = {
            "bank_code": message.bank_code, "record_id": r.record_id, "account_id": r.account_id,
            "currency": r.currency, "batch_id": message.batch_id, "msg_id": message.msg_id,
            "received_at": message.received_at, "institution_id": institution_id, "account_role": role,
            "region": region,
        }  # fmt: skip
        if isinstance(r, TxnRecord):
            row = {
                **common, "direction": "credit" if r.credit else "debit",
                "amount": cents_to_decimal(r.amount_cents), "booked_at": r.booked_at,
                "counterparty_account": r.counterparty_account, "counterparty_bank": r.counterparty_bank,
                "counterparty_name": r.counterparty_name, "channel": r.channel,
                "instruction_id": r.instruction_id, "purpose": r.purpose, "product_id": r.product_id,
                "balance_after": _decimal(r.balance_after_cents),
            }  # fmt: skip
            txns.append([row[column] for column in RAW_TXN_COLUMNS])
        else:
            row = {
                **common, "as_of": r.as_of, "balance": cents_to_decimal(r.balance_cents),
                "customer_liabilities": _decimal(r.customer_liabilities_cents),
            }  # fmt: skip
            balances.append([row[column] for column in RAW_BALANCE_COLUMNS])
    return txns, balances


def _decimal(cents: int | None) -> Decimal | None:
    return None if cents is None else cents_to_decimal(cents)


def _store_records(
    storage, order: list[dict[str, Any]], view: ReferenceView, received_from: int = RECEIVED_FROM
) -> int:
    """As the gateway splits each batch into one message per partition and the workers write
    their raw rows; each batch received one second after the one before."""
    txns: list[list[Any]] = []
    balances: list[list[Any]] = []
    for n, batch in enumerate(order):
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for record in decode_records(batch["records"]):
            by_partition[partition_for(record.account_id, PARTITIONS)].append(record)
        for partition, part in sorted(by_partition.items()):
            msg_id = f"{batch['bank_code']}/{batch['batch_id']}/{partition}"
            message = RecordBatchMessage(
                msg_id, batch["bank_code"], batch["batch_id"], received_from + n, part
            )
            more_txns, more_balances = _raw_rows(message, view)
            txns += more_txns
            balances += more_balances
    storage.insert(f"{DATABASE}.raw_transactions", RAW_TXN_COLUMNS, txns)
    storage.insert(f"{DATABASE}.raw_balances", RAW_BALANCE_COLUMNS, balances)
    return len(txns) + len(balances)


@pytest.fixture(scope="module")
def stored(chdb_storage, tmp_path_factory) -> Stored:
    root: Path = tmp_path_factory.mktemp("replay-province")
    province = build_province(SEED, INSTITUTIONS, as_of=AS_OF)
    plan = plan_violations(province, SEED, days=HOURS / 24)
    write_files(province, root, hours=HOURS, seed=SEED, violations=plan, intensity=INTENSITY)
    reference = {
        kind: json.loads((root / "reference" / f"{kind}.json").read_text("utf-8")) for kind in REFERENCE_ORDER
    }
    batches = {
        path.stem: [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        for path in sorted((root / "batches").glob("*.jsonl"))
    }
    order = push_order(batches, "realtime")
    view = ReferenceView()
    _store_reference(chdb_storage, reference, view)
    records = _store_records(chdb_storage, order, view)
    return Stored(reference, order, records)


@pytest.fixture(scope="module")
def lowered(tmp_path_factory) -> Path:
    """The shipped thresholds with the non-natural-person transfer line lowered, as a new version."""
    text = DEFAULT_FILE.read_text("utf-8")
    assert 'non_natural_transfer = "2000000.00"' in text
    text = text.replace('non_natural_transfer = "2000000.00"', f'non_natural_transfer = "{LOWERED_LINE}"')
    version = load_thresholds(path=DEFAULT_FILE).version
    text = text.replace(f'version = "{version}"', f'version = "{version}-replay-test"', 1)
    path = tmp_path_factory.mktemp("thresholds") / "lowered.toml"
    path.write_text(text, "utf-8")
    return path


def _table_rows(storage) -> dict[str, int]:
    names = [
        row[0]
        for row in storage.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": DATABASE})
    ]
    return {name: int(storage.query(f"SELECT count() FROM {DATABASE}.{name}")[0][0]) for name in names}


def _period() -> tuple[datetime, datetime]:
    # the whole simulated day and a day either side: late and early records included
    return START - timedelta(days=1), START + timedelta(hours=HOURS) + timedelta(days=1)


def test_the_default_thresholds_find_nothing_gained_or_lost(chdb_storage, stored):
    before = _table_rows(chdb_storage)
    since, until = _period()
    # small slices: the records come back over many reads, as a week of a province would
    report = run_replay(
        chdb_storage, since, until, load_thresholds(), load_thresholds(), chunk_records=1_000, progress=False
    )
    assert report.records == stored.records
    assert report.comparison.identical
    assert report.comparison.baseline_alerts == report.comparison.candidate_alerts > 0
    assert _table_rows(chdb_storage) == before


def test_a_lowered_line_gains_large_value_reports_only_and_writes_nothing(chdb_storage, stored, lowered):
    before = _table_rows(chdb_storage)
    since, until = _period()
    report = run_replay(
        chdb_storage, since, until, load_thresholds(), load_thresholds(path=lowered),
        candidate_file=str(lowered), progress=False,
    )  # fmt: skip
    comparison = report.comparison
    assert comparison.gained, "a lower reporting line must report more account-days"
    assert {alert.typology for alert in comparison.gained} == {"large_value"}
    assert comparison.lost == []
    # a lower line may grade a report already raised higher (far_multiple), never another typology
    assert {change.alert.typology for change in comparison.changed} <= {"large_value"}
    by_typology = {group.name: group for group in comparison.by_typology}
    assert by_typology["large_value"].gained == len(comparison.gained)
    assert all(
        g.gained == g.lost == g.changed == 0 for name, g in by_typology.items() if name != "large_value"
    )
    assert sum(g.gained for g in comparison.by_institution) == len(comparison.gained)
    assert sum(g.gained for g in comparison.by_region) == len(comparison.gained)
    assert report.candidate_thresholds.endswith("-replay-test")
    assert _table_rows(chdb_storage) == before


def test_the_replayed_alerts_are_the_in_process_evals(chdb_storage, stored, lowered):
    """The same alerts, with the same figures, as `fundwatch eval --engine direct --thresholds`
    raises over the same province: replay reads back what eval pushes."""
    since, until = _period()
    candidate = load_thresholds(path=lowered)
    replayed = replay_alerts(chdb_storage, since, until, [load_thresholds(), candidate])
    for thresholds, alerts in zip((load_thresholds(), candidate), replayed.alerts, strict=True):
        with StatusLine("eval", enabled=False) as status:
            evaluated, _ = _direct(stored.reference, stored.order, status, "replay test", thresholds)
        assert alerts == sorted((AlertView.of(a.data) for a in evaluated), key=lambda a: a.alert_id)
    # what eval's table counts per typology
    gained = Counter(a.typology for a in replayed.alerts[1]) - Counter(a.typology for a in replayed.alerts[0])
    assert set(gained) == {"large_value"}


def test_the_command_prints_the_table_and_writes_the_json(
    chdb_storage, stored, lowered, tmp_path, capsys, monkeypatch
):
    # the command opens storage itself: hand it the store this process already holds (chDB
    # allows one data path per process), and keep it open for the tests after this one
    monkeypatch.setattr("services.storage.open_storage", lambda url: _Unclosed(chdb_storage))
    out = tmp_path / "replay.json"
    since, until = _period()
    code = main([
        "replay", "--from", since.isoformat(), "--until", until.isoformat(), "--thresholds", str(lowered),
        "--clickhouse-url", f"chdb://{tmp_path}", "--json", str(out), "--limit", "3",
    ])  # fmt: skip
    assert code == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "alerts per typology" in printed and "large_value" in printed
    assert "gained: raised by the candidate only" in printed
    assert "Nothing was written to ClickHouse" in printed
    doc = json.loads(out.read_text("utf-8"))
    assert doc["records"] == stored.records
    assert doc["comparison"]["gained"] and doc["comparison"]["lost"] == []
    assert {a["typology"] for a in doc["comparison"]["gained"]} == {"large_value"}


class _Unclosed:
    """The session's storage as the command sees it: closing it is left to the fixture."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.kind = inner.kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:
        pass
