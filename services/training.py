"""`fundwatch train`: fit the `anomaly` model on the raw records ClickHouse holds and write a
versioned artefact.

The records of each account are read back in event-time order, a chunk of accounts (or of one
busy account's days) at a time, and folded through models/features exactly as the stream folds
them: one Beijing day after another, each closed day's feature vector computed against the days
before it. Records from HISTORY_DAYS before the window are read too, so the first judged day has
its own history as it would have in the stream. The vectors are grouped by the account's role in
the reference data, one model is fitted per role (models/anomaly_model), and the artefact is
written by services/anomaly_store. Only SELECTs reach ClickHouse.

Deterministic: the records come in a fixed order (account, time, record id), the rows of each
role follow it, and the forests take the seed, so the same store, window and seed give the same
artefact digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from itertools import groupby
from operator import attrgetter
from pathlib import Path

import msgspec

from models.anomaly_artefact import TrainingFigures, TrainingWindow, build_metadata
from models.anomaly_model import MIN_ROLE_ROWS, RoleModel, feature_matrix, fit_role
from models.features import FEATURE_SCHEMA_HASH, HISTORY_DAYS, FeatureVector, closed_day_features
from models.features.kinds import kind_map
from models.windows import DAY, beijing_day_start
from schemas.ddl import DATABASE
from schemas.fields import BEIJING, amount_to_cents
from schemas.messages import TxnRecord
from services.anomaly_store import model_bytes, write_artefact
from services.progress import StatusLine
from services.storage import Storage, open_storage

CHUNK_RECORDS = 200_000  # records per read: a few hundred MB of Python objects at most
ROLE_LOOKUP_ACCOUNTS = 5_000  # account ids per reference query

_DAY_COUNTS_SQL = f"""SELECT account_id, intDiv(toUInt32(booked_at) + 28800, 86400) AS day, count()
    FROM {DATABASE}.raw_transactions FINAL
    WHERE booked_at >= %(since)s AND booked_at < %(until)s AND currency = 'CNY'
    GROUP BY account_id, day ORDER BY account_id, day"""
# No names, purposes or instruction ids: features need none of them, so they are never read.
_CHUNK_SQL = f"""SELECT account_id, record_id, direction = 'credit', toString(amount),
           toUInt32(booked_at), counterparty_account, counterparty_bank, channel, currency
    FROM {DATABASE}.raw_transactions FINAL
    WHERE account_id IN %(accounts)s AND booked_at >= %(since)s AND booked_at < %(until)s
      AND currency = 'CNY'
    ORDER BY account_id, booked_at, record_id"""
_ROLES_SQL = f"""SELECT account_id, role FROM {DATABASE}.ref_accounts FINAL
    WHERE account_id IN %(accounts)s"""
# Every registered account, for the kind of the counterparties (models/features/kinds.py):
# a counterparty need not have records of its own in the period.
_KINDS_SQL = f"""SELECT account_id, role, institution_id FROM {DATABASE}.ref_accounts FINAL
    ORDER BY account_id"""
_BEIJING_EPOCH_SHIFT = 8 * 3600  # the SQL's +28800: day numbers count Beijing days


class TrainingError(RuntimeError):
    """Training could not produce an artefact; the message says why."""


class TrainingPeriod(msgspec.Struct, frozen=True):
    since: datetime
    until: datetime
    first_day: int  # epoch seconds of the first judged Beijing midnight
    end_day: int  # exclusive
    history_from: int  # epoch seconds: records read from here on


class Chunk(msgspec.Struct, frozen=True):
    """One read: these accounts' records of [since, until) (epoch seconds)."""

    accounts: tuple[str, ...]
    since: int
    until: int
    records: int


class RoleRows(msgspec.Struct):
    vectors: list[FeatureVector] = []
    accounts: int = 0


class Collected(msgspec.Struct):
    roles: dict[str, RoleRows]
    figures: TrainingFigures


class ArtefactInfo(msgspec.Struct, frozen=True):
    artefact_id: str
    path: str
    digest: str
    feature_schema_hash: str
    seed: int
    rows_per_role: dict[str, int]
    skipped_roles: dict[str, int]
    records: int
    accounts: int
    windows: int


def training_period(since: date | datetime, until: date | datetime) -> TrainingPeriod:
    """The whole Beijing days inside [since, until); a date means its Beijing midnight."""
    start, end = _moment("since", since), _moment("until", until)
    start_ts, end_ts = int(start.timestamp()), int(end.timestamp())
    first_day = beijing_day_start(start_ts)
    if first_day < start_ts:
        first_day += DAY
    end_day = beijing_day_start(end_ts)
    if end_day <= first_day:
        raise TrainingError(f"[{start.isoformat()}, {end.isoformat()}) holds no whole Beijing day")
    return TrainingPeriod(start, end, first_day, end_day, first_day - HISTORY_DAYS * DAY)


def _moment(name: str, value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TrainingError(f"`{name}` needs a time zone offset (or give a date: Beijing days)")
        return value
    return datetime.combine(value, time(0), BEIJING)


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _beijing_date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, BEIJING).date().isoformat()


def plan_chunks(
    day_counts: Sequence[tuple[str, int, int]], limit: int, period: TrainingPeriod
) -> list[Chunk]:
    """Reads of at most ``limit`` records, in (account, day) order: whole accounts together
    while they fit, a busier account alone in runs of its days (one day more than ``limit`` is
    a read of its own). ``day_counts``: (account, day start, records), sorted."""
    chunks: list[Chunk] = []
    group: list[str] = []
    held = 0
    for account, days in groupby(day_counts, key=lambda row: row[0]):
        days = list(days)
        total = sum(count for _, _, count in days)
        if group and held + total > limit:
            chunks.append(Chunk(tuple(group), period.history_from, period.end_day, held))
            group, held = [], 0
        if total <= limit:
            group.append(account)
            held += total
            continue
        chunks.extend(_day_runs(account, days, limit, period))
    if group:
        chunks.append(Chunk(tuple(group), period.history_from, period.end_day, held))
    return chunks


def _day_runs(
    account: str, days: list[tuple[str, int, int]], limit: int, period: TrainingPeriod
) -> list[Chunk]:
    runs: list[Chunk] = []
    start, held = period.history_from, 0
    for _, day_start, count in days:
        if held and held + count > limit:
            runs.append(Chunk((account,), start, day_start, held))
            start, held = day_start, 0
        held += count
    runs.append(Chunk((account,), start, period.end_day, held))
    return runs


def account_day_counts(storage: Storage, period: TrainingPeriod) -> list[tuple[str, int, int]]:
    rows = storage.query(_DAY_COUNTS_SQL, {"since": _utc(period.history_from), "until": _utc(period.end_day)})
    return [(str(account), int(day) * DAY - _BEIJING_EPOCH_SHIFT, int(count)) for account, day, count in rows]


def account_roles(storage: Storage, accounts: Sequence[str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for offset in range(0, len(accounts), ROLE_LOOKUP_ACCOUNTS):
        part = tuple(accounts[offset : offset + ROLE_LOOKUP_ACCOUNTS])
        roles.update((str(a), str(r)) for a, r in storage.query(_ROLES_SQL, {"accounts": part}) if r)
    return roles


def reference_kinds(storage: Storage) -> dict[int, str]:
    """Counterparty hash -> kind of every account registered now, as the worker's reference
    view gives it to the detector."""
    rows = storage.query(_KINDS_SQL, {})
    return kind_map({"account_id": a, "role": r, "institution_id": i or None} for a, r, i in rows)


def _txn(row: Sequence) -> TxnRecord:
    account_id, record_id, credit, amount, booked_at, counterparty, bank, channel, currency = row
    return TxnRecord(
        record_id, account_id, bool(credit), amount_to_cents(amount), int(booked_at), counterparty, bank,
        channel, currency, None, None, None, None, None,
    )  # fmt: skip


def read_records(storage: Storage, chunks: Sequence[Chunk], status: StatusLine) -> Iterator[TxnRecord]:
    """Every chunk's records in turn, in (account, event time, record id) order."""
    total = sum(chunk.records for chunk in chunks)
    done = 0
    for number, chunk in enumerate(chunks, start=1):
        params = {"accounts": chunk.accounts, "since": _utc(chunk.since), "until": _utc(chunk.until)}
        rows = storage.query(_CHUNK_SQL, params)
        done += len(rows)
        status.update(f"read {done:,}/{total:,} records (chunk {number}/{len(chunks)})")
        yield from map(_txn, rows)


def collect_windows(
    storage: Storage, period: TrainingPeriod, status: StatusLine, chunk_records: int = CHUNK_RECORDS
) -> Collected:
    """Every judged account-day's feature vector, grouped by the account's role."""
    status.update("counting records", force=True)
    day_counts = account_day_counts(storage, period)
    accounts = sorted({account for account, _, _ in day_counts})
    roles = account_roles(storage, accounts)
    kinds = reference_kinds(storage)
    chunks = plan_chunks(day_counts, chunk_records, period)
    records = read_records(storage, chunks, status)
    read = sum(count for _, _, count in day_counts)
    return fold_accounts(records, roles, period, read, len(accounts), kinds)


def fold_accounts(
    records: Iterable[TxnRecord],
    roles: Mapping[str, str],
    period: TrainingPeriod,
    read: int,
    accounts: int,
    kinds: Mapping[int, str] | None = None,
) -> Collected:
    """The judged account-days of ``records`` (CNY transactions of [history_from, end_day), in
    (account, event time, record id) order), grouped by the account's role in ``roles``;
    ``kinds``: counterparty hash -> kind of the registered accounts, as the detector reads it."""
    by_role: dict[str, RoleRows] = {}
    windows = unregistered_accounts = unregistered_windows = 0
    for account_id, txns in groupby(records, key=attrgetter("account_id")):
        vectors = closed_day_features(txns, period.first_day, period.end_day, kinds)
        if not vectors:
            continue
        windows += len(vectors)
        role = roles.get(account_id)
        if role is None:
            unregistered_accounts += 1
            unregistered_windows += len(vectors)
            continue
        rows = by_role.setdefault(role, RoleRows())
        rows.vectors.extend(vectors)
        rows.accounts += 1
    figures = TrainingFigures(
        records=read,
        accounts=accounts,
        windows=windows,
        unregistered_accounts=unregistered_accounts,
        unregistered_windows=unregistered_windows,
    )
    return Collected(dict(sorted(by_role.items())), figures)


def collect_from_records(
    records: Iterable[TxnRecord],
    roles: Mapping[str, str],
    period: TrainingPeriod,
    kinds: Mapping[int, str] | None = None,
) -> Collected:
    """``collect_windows`` over records held in memory (``fundwatch eval --anomaly`` trains on
    a simulated province it has not stored): the same period, order and fold as the read from
    ClickHouse, so the same records give the same vectors."""
    kept = sorted(
        (r for r in records if r.currency == "CNY" and period.history_from <= r.booked_at < period.end_day),
        key=lambda r: (r.account_id, r.booked_at, r.record_id),
    )
    accounts = len({r.account_id for r in kept})
    return fold_accounts(kept, roles, period, len(kept), accounts, kinds)


def fit_models(
    collected: Collected, seed: int, status: StatusLine
) -> tuple[dict[str, RoleModel], dict[str, int]]:
    """A model per role with enough account-days; the others, with their counts, apart."""
    models: dict[str, RoleModel] = {}
    skipped: dict[str, int] = {}
    for role, rows in collected.roles.items():
        if len(rows.vectors) < MIN_ROLE_ROWS:
            skipped[role] = len(rows.vectors)
            continue
        status.update(f"fitting {role}: {len(rows.vectors):,} account-days", force=True)
        models[role] = fit_role(role, feature_matrix(rows.vectors), rows.accounts, seed)
    return models, skipped


def training_window(period: TrainingPeriod) -> TrainingWindow:
    return TrainingWindow(
        since=period.since.isoformat(),
        until=period.until.isoformat(),
        first_day=_beijing_date(period.first_day),
        end_day=_beijing_date(period.end_day),
        history_from=_utc(period.history_from).isoformat(),
        days=(period.end_day - period.first_day) // DAY,
    )


def train_on(
    storage: Storage,
    since: date | datetime,
    until: date | datetime,
    out_dir: Path,
    seed: int,
    status: StatusLine | None = None,
    chunk_records: int = CHUNK_RECORDS,
) -> ArtefactInfo:
    """``train`` over a storage the caller holds (and closes)."""
    status = status or StatusLine("train", enabled=False)
    period = training_period(since, until)
    collected = collect_windows(storage, period, status, chunk_records)
    return write_trained(collected, period, out_dir, seed, status)


def write_trained(
    collected: Collected, period: TrainingPeriod, out_dir: Path, seed: int, status: StatusLine
) -> ArtefactInfo:
    """Fit a model per role on ``collected`` and write the artefact under ``out_dir``."""
    models, skipped = fit_models(collected, seed, status)
    if not models:
        raise TrainingError(
            f"no role has {MIN_ROLE_ROWS} account-days in {_beijing_date(period.first_day)}.."
            f"{_beijing_date(period.end_day)} (found: { ({r: len(v.vectors) for r, v in collected.roles.items()}) })"
        )
    blob = model_bytes(models)
    metadata = build_metadata(models, skipped, collected.figures, training_window(period), seed, blob)
    status.update("writing the artefact", force=True)
    document = write_artefact(out_dir, blob, metadata)
    status.update(f"wrote {document.artefact_id}", force=True)
    return ArtefactInfo(
        artefact_id=document.artefact_id,
        path=str(Path(out_dir) / document.artefact_id),
        digest=document.digest,
        feature_schema_hash=FEATURE_SCHEMA_HASH,
        seed=seed,
        rows_per_role={role: model.figures.rows for role, model in models.items()},
        skipped_roles=skipped,
        records=collected.figures.records,
        accounts=collected.figures.accounts,
        windows=collected.figures.windows,
    )


def train(
    storage_url: str,
    since: date | datetime,
    until: date | datetime,
    out_dir: Path,
    seed: int,
    status: StatusLine | None = None,
    chunk_records: int = CHUNK_RECORDS,
) -> ArtefactInfo:
    """Fit one model per account role on the whole Beijing days of [since, until) and write the
    artefact under ``out_dir`` (``CURRENT`` then names it). ``storage_url``: clickhouse:// or
    chdb:// (CONTRACT.md §1); nothing is written there."""
    storage = open_storage(storage_url)
    try:
        return train_on(storage, since, until, out_dir, seed, status, chunk_records)
    finally:
        storage.close()
