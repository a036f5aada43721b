"""Versioned migrations, applied at start by every process that opens storage.

Statements are idempotent (IF NOT EXISTS), so two processes starting together do no harm.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from schemas.ddl import DATABASE, MIGRATIONS
from services.storage.base import Storage

log = logging.getLogger("fundwatch.storage")


def migrate(storage: Storage) -> list[int]:
    """Bring the database to the newest schema; return the versions applied now."""
    storage.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    storage.execute(
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations (
            version UInt32, name String, applied_at DateTime('UTC')
        ) ENGINE = ReplacingMergeTree() ORDER BY version"""
    )
    done = {row[0] for row in storage.query(f"SELECT version FROM {DATABASE}.schema_migrations")}
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            storage.execute(statement)
        storage.insert(
            f"{DATABASE}.schema_migrations",
            ["version", "name", "applied_at"],
            [[migration.version, migration.name, datetime.now(UTC).replace(microsecond=0)]],
        )
        log.info("migration applied version=%d name=%r", migration.version, migration.name)
        applied.append(migration.version)
    storage.tune_tables(DATABASE)
    return applied
