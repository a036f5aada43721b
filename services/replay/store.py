"""`fundwatch replay --save`: the report written to its own tables (schemas/ddl.py migration 8),
and nowhere else.

The counts and the alerts first, the header last: GET /v1/replays lists a replay by its header, so
it is listed only once it is whole. A replay that fails halfway leaves rows no header names, which
nobody reads. The tables are made by the migrations every FundWatch process applies at start;
the replay does not migrate a store itself (a migration may rebuild other tables), it asks for
one of this version to be started once.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from schemas.ddl import DATABASE
from services.replay.saved import (
    ALERT_COLUMNS,
    COUNT_COLUMNS,
    HEADER_COLUMNS,
    alert_rows,
    count_rows,
    header,
    header_row,
)
from services.storage.base import Storage, StorageError

log = logging.getLogger("fundwatch.replay")

TABLES = ("replays", "replay_alerts", "replay_counts")
CHUNK_ROWS = 10_000  # alert rows per insert


def new_replay_id(now: datetime) -> str:
    """Sortable by when it was saved, and unguessable: ``rp-20261125T083000-<12 hex>``."""
    return f"rp-{now.astimezone(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(6)}"


def check_tables(storage: Storage) -> None:
    present = {
        row[0]
        for row in storage.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": DATABASE})
    }
    missing = [table for table in TABLES if table not in present]
    if missing:
        raise StorageError(
            f"no {', '.join(f'{DATABASE}.{t}' for t in missing)} to save the replay in: start a FundWatch "
            "process of this version once against this store (its start creates them), then replay again"
        )


def save_report(storage: Storage, report: Any, now: datetime | None = None) -> str:
    """Write ``report`` (services/replay/engine.ReplayReport) and return its replay id."""
    check_tables(storage)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    replay_id = new_replay_id(now)
    comparison = report.comparison
    storage.insert(f"{DATABASE}.replay_counts", COUNT_COLUMNS, count_rows(replay_id, comparison))
    rows = alert_rows(replay_id, comparison)
    for start in range(0, len(rows), CHUNK_ROWS):
        storage.insert(f"{DATABASE}.replay_alerts", ALERT_COLUMNS, rows[start : start + CHUNK_ROWS])
    storage.insert(f"{DATABASE}.replays", HEADER_COLUMNS, [header_row(replay_id, now, header(report))])
    log.info("replay saved replay_id=%s alerts=%d cells=%d", replay_id, len(rows), len(comparison.cells))
    return replay_id
