"""Flows per currency on both backends (ClickHouse 18.16 and chDB 26.x): the workers' partials,
migration 5's rebuild of them from the raw transactions, and what GET /v1/accounts/{id}/flows
answers, unknown accounts included."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from schemas.ddl import DATABASE, MIGRATIONS
from schemas.fields import epoch_seconds
from schemas.messages import RecordBatchMessage, TxnRecord
from services.auth import Principal
from services.gateway.errors import ApiError
from services.gateway.reads import Reads
from services.storage.async_storage import AsyncStorage
from streams.rows import AGG_ACCOUNT_TABLE, AGG_INSTITUTION_TABLE, Columns, message_columns

pytestmark = pytest.mark.integration

ADMIN = Principal(token_id="admin", role="admin")
BANK = Principal(token_id="bank", role="bank", bank_code="B001")
DESK = Principal(token_id="desk", role="desk", region="2201")


def txn(
    rid: str, account: str, cents: int, currency: str, at: str, credit: bool = True, cp: str = "6217"
) -> TxnRecord:
    return TxnRecord(
        rid, account, credit, cents, epoch_seconds(at), cp, "B002", "HVPS", currency, None, None, None, None, None
    )  # fmt: skip


@pytest.fixture
def reads(storage):
    wrapped = AsyncStorage(storage)
    yield Reads(wrapped)
    wrapped._executor.shutdown(wait=True)  # the backend itself belongs to the session fixture


def write(storage, columns: Columns) -> None:
    for table, block in columns.tables.items():
        storage.insert_columns(table, block.columns())


def process(storage, msg_id: str, records: list[TxnRecord], enrich) -> Columns:
    """What a worker writes for one message (streams/records.py): raw records and partials."""
    columns = Columns()
    message_columns(RecordBatchMessage(msg_id, "B001", "b", 1_764_000_000, records), enrich, columns)
    write(storage, columns)
    return columns


def register(storage, account: str, institution: str, region: str = "220102") -> None:
    storage.insert(
        f"{DATABASE}.ref_accounts",
        ("account_id", "bank_code", "institution_id", "role", "doc", "version"),
        [[account, "B001", institution, "customer_custody", "{}", 1]],
    )
    storage.insert(
        f"{DATABASE}.ref_institutions",
        ("institution_id", "region", "type", "doc", "version"),
        [[institution, region, "p2p_lending", "{}", 1]],
    )


def flows(reads: Reads, principal: Principal, account: str, grain: str = "day", limit: int = 100) -> dict:
    return asyncio.run(reads.account_flows(principal, account, grain, None, limit))


def refused(reads: Reads, principal: Principal, account: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        flows(reads, principal, account)
    return caught.value


def test_the_per_currency_tables_exist(storage):
    tables = {
        row[0]
        for row in storage.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": DATABASE})
    }
    assert {"agg_account_ccy", "agg_institution_ccy"} <= tables


def test_one_account_in_two_currencies_reads_per_currency_never_summed(storage, reads):
    account, institution = f"ccy-{uuid.uuid4().hex[:10]}", f"I-{uuid.uuid4().hex[:8]}"
    register(storage, account, institution)
    info = {account: (institution, "customer_custody", "220102")}
    # one message carrying both currencies: their partials must not collapse into one row
    process(
        storage,
        f"m-{account}",
        [
            txn(f"{account}-1", account, 1_000_00, "CNY", "2026-11-20T10:00:00+08:00"),
            txn(f"{account}-2", account, 10_00, "USD", "2026-11-20T10:30:00+08:00", cp="US-1"),
            txn(f"{account}-3", account, 2_50, "USD", "2026-11-21T09:00:00+08:00", credit=False, cp="US-2"),
        ],
        lambda a: info.get(a, ("", "", "")),
    )
    answer = flows(reads, ADMIN, account)
    assert answer["totals"] == {
        "CNY": {
            "inflow": "1000.00",
            "outflow": "0.00",
            "credits": 1,
            "debits": 0,
            "distinct_counterparties": 1,
        },
        "USD": {
            "inflow": "10.00",
            "outflow": "2.50",
            "credits": 1,
            "debits": 1,
            "distinct_counterparties": 2,
        },
    }
    assert [(w["window_start"], w["currency"], w["inflow"], w["outflow"]) for w in answer["windows"]] == [
        ("2026-11-20T16:00:00Z", "USD", "0.00", "2.50"),
        ("2026-11-19T16:00:00Z", "CNY", "1000.00", "0.00"),
        ("2026-11-19T16:00:00Z", "USD", "10.00", "0.00"),
    ]
    assert {w["institution_id"] for w in answer["windows"]} == {institution}
    # ``limit`` counts windows: the newest day alone, then both days with all their currencies
    assert [w["currency"] for w in flows(reads, ADMIN, account, limit=1)["windows"]] == ["USD"]
    assert len(flows(reads, ADMIN, account, limit=2)["windows"]) == 3
    hours = flows(reads, ADMIN, account, grain="hour")["windows"]
    assert [(w["window_start"], w["currency"]) for w in hours] == [
        ("2026-11-21T01:00:00Z", "USD"),
        ("2026-11-20T02:00:00Z", "CNY"),
        ("2026-11-20T02:00:00Z", "USD"),
    ]
    # the same answer for the bank that holds it and the desk of its region
    assert flows(reads, BANK, account)["totals"] == answer["totals"]
    assert flows(reads, DESK, account)["totals"] == answer["totals"]


def test_an_unknown_account_is_404_for_every_role(reads):
    unknown = f"nobody-{uuid.uuid4().hex}"
    for principal in (ADMIN, BANK, DESK):
        error = refused(reads, principal, unknown)
        assert (error.status, error.code) == (404, "not_found"), principal.role


def test_a_registered_account_without_records_reads_as_empty(storage, reads):
    account = f"quiet-{uuid.uuid4().hex[:10]}"
    register(storage, account, f"I-{uuid.uuid4().hex[:8]}")
    assert flows(reads, ADMIN, account) == {
        "account_id": account,
        "grain": "day",
        "totals": {},
        "windows": [],
    }


def test_an_unregistered_account_with_records_is_known(storage, reads):
    account = f"unreg-{uuid.uuid4().hex[:10]}"
    process(storage, f"m-{account}", [txn(f"{account}-1", account, 7_00, "CNY", "2026-11-20T10:00:00+08:00")],
            lambda a: ("", "", ""))  # fmt: skip
    assert flows(reads, ADMIN, account)["totals"]["CNY"]["inflow"] == "7.00"
    # outside every bank's and desk's scope, as before: it is registered to none
    assert refused(reads, BANK, account).status == 404
    assert refused(reads, DESK, account).status == 404


def test_an_account_outside_the_callers_scope_is_404(storage, reads):
    account = f"far-{uuid.uuid4().hex[:10]}"
    register(storage, account, f"I-{uuid.uuid4().hex[:8]}", region="330102")
    assert refused(reads, DESK, account).status == 404
    assert refused(reads, Principal(token_id="b2", role="bank", bank_code="B002"), account).status == 404
    assert flows(reads, ADMIN, account)["totals"] == {}


def test_the_storage_summary_totals_amounts_per_currency(storage, reads):
    account = f"sum-{uuid.uuid4().hex[:10]}"
    process(storage, f"m-{account}", [txn(f"{account}-1", account, 3_00, "EUR", "2026-11-20T10:00:00+08:00")],
            lambda a: ("", "", ""))  # fmt: skip
    summary = asyncio.run(reads.storage_summary())
    totals = summary["transactions_total_amount"]
    assert isinstance(totals, dict) and Decimal(totals["EUR"]) >= Decimal("3.00")
    assert {"agg_account_ccy", "agg_institution_ccy"} <= set(summary["rows"])


def _final_rows(storage, table: str, key: str, keys: list[str]) -> set[tuple]:
    rows = storage.query(
        f"""SELECT {key}, toString(grain), toUInt32(window_start), currency, msg_id,
                   inflow, outflow, n_in, n_out, arraySort(counterparties)
            FROM {table} FINAL WHERE {key} IN %(keys)s""",
        {"keys": tuple(keys)},
    )
    return {(*row[:-1], tuple(row[-1])) for row in rows}


def _expected(worker: Columns, table: str) -> set[tuple]:
    block = worker.tables[table]
    out = set()
    for value in block.rows():
        row = dict(zip(block.names, value, strict=True))
        out.add((
            row[block.names[0]], row["grain"], row["window_start"], row["currency"], row["msg_id"],
            row["inflow"], row["outflow"], row["n_in"], row["n_out"], tuple(sorted(row["counterparties"])),
        ))  # fmt: skip
    return out


def test_migration_5_rebuilds_the_partials_the_workers_write(storage):
    """Records processed before the upgrade have partials only in the old tables: the migration
    makes them again from raw_transactions, the same rows a worker makes, and a second run adds
    nothing."""
    suffix = uuid.uuid4().hex[:8]
    own_a, own_b, other = f"RB-A-{suffix}", f"RB-B-{suffix}", f"RB-O-{suffix}"
    inst, inst2 = f"RB-I1-{suffix}", f"RB-I2-{suffix}"
    register(storage, own_a, inst)
    register(storage, own_b, inst)
    register(storage, other, inst2, region="220201")
    info = {own_a: (inst, "own_operating", "220102"), own_b: (inst, "own_operating", "220102"),
            other: (inst2, "own_operating", "220201")}  # fmt: skip
    records = [
        txn(f"{suffix}-1", own_a, 1_000_00, "CNY", "2026-11-20T10:00:00+08:00", cp="6217-X"),
        txn(f"{suffix}-2", own_a, 10_00, "USD", "2026-11-20T10:05:00+08:00", cp="US-X"),
        txn(f"{suffix}-3", own_a, 3_00, "USD", "2026-11-20T23:59:59+08:00", credit=False, cp=other),
        txn(
            f"{suffix}-4", own_a, 5_00, "CNY", "2026-11-21T00:00:00+08:00", credit=False, cp=own_b
        ),  # internal
        txn(f"{suffix}-5", own_b, 5_00, "CNY", "2026-11-21T00:00:00+08:00", cp=own_a),  # its other leg
        txn(f"{suffix}-6", other, 3_00, "USD", "2026-11-20T15:59:59Z", cp=own_a),
    ]
    enrich = lambda a: info.get(a, ("", "", ""))  # noqa: E731
    worker = Columns()
    message_columns(
        RecordBatchMessage(f"rb1-{suffix}", "B001", "b", 1_764_000_000, records[:3]), enrich, worker
    )
    message_columns(
        RecordBatchMessage(f"rb2-{suffix}", "B001", "b", 1_764_000_000, records[3:]), enrich, worker
    )
    # only the raw records reach storage, as if processed before the per-currency tables existed
    raw = f"{DATABASE}.raw_transactions"
    storage.insert_columns(raw, worker.tables[raw].columns())
    (migration,) = [m for m in MIGRATIONS if m.version == 5]
    rebuilds = [s for s in migration.statements if s.lstrip().startswith("INSERT")]
    assert len(rebuilds) == 2
    for _ in range(2):
        for statement in rebuilds:
            storage.execute(statement)
        accounts = _final_rows(storage, AGG_ACCOUNT_TABLE, "account_id", [own_a, own_b, other])
        assert accounts == _expected(worker, AGG_ACCOUNT_TABLE)
        institutions = _final_rows(storage, AGG_INSTITUTION_TABLE, "institution_id", [inst, inst2])
        assert institutions == _expected(worker, AGG_INSTITUTION_TABLE)
    assert {row[3] for row in accounts} == {"CNY", "USD"}
    # the internal move is in the accounts' figures and in neither institution's
    assert not any(row[2] == epoch_seconds("2026-11-20T16:00:00Z") for row in institutions)
    labels = storage.query(
        f"SELECT DISTINCT institution_id FROM {AGG_ACCOUNT_TABLE} FINAL WHERE account_id = %(a)s",
        {"a": own_a},
    )
    assert labels == [(inst,)]
