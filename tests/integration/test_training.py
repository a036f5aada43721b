"""`fundwatch train` against a real ClickHouse: days of a simulated province stored in chDB as the
workers store them, then trained on. The artefact is written with what it promises; the same
store, window and seed give the same digest, however the records are read in chunks, and a
ClickHouse server holding the same records gives it too."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from models.anomaly_artefact import METADATA_FILE, MODEL_FILE
from models.anomaly_model import MIN_ROLE_ROWS
from models.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH, HISTORY_DAYS
from schemas.ddl import DATABASE
from schemas.fields import BEIJING
from schemas.messages import RecordBatchMessage, TxnRecord, partition_for
from services.anomaly_store import current_artefact, load_artefact
from services.progress import StatusLine
from services.simulator import build_province, plan_violations, write_files
from services.simulator.pipeline import PARTITIONS, decode_records
from services.training import train, train_on
from streams.reference import ReferenceView
from streams.rows import Columns, message_columns

pytestmark = pytest.mark.integration

SEED = 43
INSTITUTIONS = 8
SIMULATED_DAYS = 8
INTENSITY = 100.0
# Days of their own, far from any other test's rows in the shared chDB of the run.
AS_OF = date(2034, 2, 6)
START = datetime.combine(AS_OF, time(0), BEIJING)
SINCE = START + timedelta(days=2)  # the first two days serve as history only
UNTIL = START + timedelta(days=SIMULATED_DAYS)
RECEIVED_AT = int(START.timestamp()) + SIMULATED_DAYS * 86400


@dataclass
class Stored:
    url: str
    cny_transactions: int  # stored with an event time before UNTIL: what training reads


def _write_raw(storage, messages: list[RecordBatchMessage], view: ReferenceView) -> None:
    """The raw rows (and aggregate partials) as a worker writes them: one block per table."""
    columns = Columns()
    for message in messages:
        message_columns(message, view.enrich, columns)
    for table, values in columns.tables.items():
        storage.insert_columns(table, values.columns())


def _messages(root: Path) -> list[RecordBatchMessage]:
    """Each batch split per partition, as the gateway hands it to the workers."""
    messages = []
    for path in sorted((root / "batches").glob("*.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            batch = json.loads(line)
            parts: dict[int, list[Any]] = defaultdict(list)
            for record in decode_records(batch["records"]):
                parts[partition_for(record.account_id, PARTITIONS)].append(record)
            for partition, records in sorted(parts.items()):
                msg_id = f"{batch['bank_code']}/{batch['batch_id']}/{partition}"
                messages.append(
                    RecordBatchMessage(msg_id, batch["bank_code"], batch["batch_id"], RECEIVED_AT, records)
                )
    return messages


def _store_reference(storage, root: Path) -> ReferenceView:
    view = ReferenceView()
    for kind, key in (("institutions", "institution_id"), ("accounts", "account_id")):
        for item in json.loads((root / "reference" / f"{kind}.json").read_text("utf-8")):
            view.apply(kind, item[key].encode(), msgspec.json.encode(item))
    accounts = json.loads((root / "reference" / "accounts.json").read_text("utf-8"))
    storage.insert(
        f"{DATABASE}.ref_accounts",
        ("account_id", "bank_code", "institution_id", "role", "doc", "version"),
        [
            [a["account_id"], a["bank_code"], a.get("institution_id") or "", a["role"], json.dumps(a), 1]
            for a in accounts
        ],
    )
    return view


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("training-province")
    province = build_province(SEED, INSTITUTIONS, as_of=AS_OF)
    plan = plan_violations(province, SEED, days=SIMULATED_DAYS, patterns=1)
    write_files(province, root, hours=24 * SIMULATED_DAYS, seed=SEED, violations=plan, intensity=INTENSITY)
    return root


def _store(storage, root: Path) -> int:
    """Store the province's accounts and records; return the CNY transactions training reads."""
    view = _store_reference(storage, root)
    messages = _messages(root)
    _write_raw(storage, messages, view)
    until = int(UNTIL.timestamp())
    return sum(
        1
        for message in messages
        for record in message.records
        if type(record) is TxnRecord and record.currency == "CNY" and record.booked_at < until
    )


@pytest.fixture(scope="module")
def stored(chdb_storage, simulated) -> Stored:
    return Stored(f"chdb://{chdb_storage.path}", _store(chdb_storage, simulated))


class _Unclosed:
    """The session's chDB as train() opens it (chDB allows one data path per process); closing is
    left to the fixture."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.kind = inner.kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:
        pass


def test_train_writes_a_versioned_artefact(chdb_storage, stored, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("services.training.open_storage", lambda url: _Unclosed(chdb_storage))
    with StatusLine("train") as status:
        info = train(stored.url, SINCE, UNTIL, tmp_path, seed=7, status=status)
    assert "train: fitting" in capsys.readouterr().err  # progress on stderr
    path = Path(info.path)
    assert (path / MODEL_FILE).is_file() and (path / METADATA_FILE).is_file()
    assert current_artefact(tmp_path) == path and path.name == info.artefact_id
    document = json.loads((path / METADATA_FILE).read_text("utf-8"))
    metadata = document["metadata"]
    assert document["digest"] == info.digest
    assert metadata["feature_schema"]["hash"] == FEATURE_SCHEMA_HASH == info.feature_schema_hash
    assert metadata["feature_schema"]["names"] == list(FEATURE_NAMES)
    assert set(metadata["libraries"]) == {"python", "numpy", "scikit_learn", "scipy"}
    assert metadata["seed"] == 7
    window = metadata["training_window"]
    assert (window["first_day"], window["end_day"], window["days"]) == ("2034-02-08", "2034-02-14", 6)
    assert window["history_from"] == (SINCE - timedelta(days=HISTORY_DAYS)).astimezone(UTC).isoformat()
    assert info.records == metadata["figures"]["records"] == stored.cny_transactions
    assert "investor" in info.rows_per_role and len(info.rows_per_role) >= 2
    for role, figures in metadata["roles"].items():
        assert figures["rows"] == info.rows_per_role[role] >= MIN_ROLE_ROWS
        assert 0 < figures["score_quantiles"]["p50"] <= figures["score_quantiles"]["p99"] <= 1
        assert len(figures["usual"]) == len(FEATURE_NAMES)
    assert all(rows < MIN_ROLE_ROWS for rows in info.skipped_roles.values())
    loaded = load_artefact(path)
    assert sorted(loaded.models) == sorted(info.rows_per_role)


def test_the_command_line_trains_and_prints_the_artefact(chdb_storage, stored, tmp_path, monkeypatch, capsys):
    from services.cli import main

    monkeypatch.setattr("services.training.open_storage", lambda url: _Unclosed(chdb_storage))
    args = ["train", "--since", SINCE.date().isoformat(), "--until", UNTIL.date().isoformat()]
    args += ["--storage", stored.url, "--out", str(tmp_path), "--seed", "7", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    expected = train_on(chdb_storage, SINCE, UNTIL, tmp_path / "direct", seed=7)
    assert f"artefact {expected.artefact_id} digest {expected.digest}" in out
    assert "investor:" in out and current_artefact(tmp_path).name == expected.artefact_id


def test_the_digest_is_the_same_for_the_same_store_window_and_seed(chdb_storage, stored, tmp_path):
    first = train_on(chdb_storage, SINCE, UNTIL, tmp_path / "first", seed=7)
    again = train_on(chdb_storage, SINCE, UNTIL, tmp_path / "again", seed=7)
    # small reads split busy accounts over several chunks: the folds must not notice
    chunked = train_on(chdb_storage, SINCE, UNTIL, tmp_path / "chunked", seed=7, chunk_records=300)
    assert first.digest == again.digest == chunked.digest
    assert first.artefact_id == again.artefact_id
    assert (tmp_path / "first" / first.artefact_id / MODEL_FILE).read_bytes() == (
        tmp_path / "again" / again.artefact_id / MODEL_FILE
    ).read_bytes()
    assert train_on(chdb_storage, SINCE, UNTIL, tmp_path / "other", seed=8).digest != first.digest


def test_a_clickhouse_server_gives_the_same_artefact(
    chdb_storage, stored, server_storage, simulated, tmp_path
):
    assert _store(server_storage, simulated) == stored.cny_transactions
    on_server = train_on(server_storage, SINCE, UNTIL, tmp_path / "server", seed=7)
    assert on_server.digest == train_on(chdb_storage, SINCE, UNTIL, tmp_path / "chdb", seed=7).digest
