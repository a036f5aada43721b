"""ClickHouse tables of the `fundwatch` database, as versioned migrations (CONTRACT.md §6).

One DDL runs on both backends: a ClickHouse 18.16 server (Debian's package) and chDB 26.x. So it
keeps to what 18.16 has: MergeTree family, Decimal, Nullable, Enum, Array, DateTime('UTC');
no TTL, LowCardinality, DateTime64, Map or JSON functions.

Idempotency is built into the engines: raw records and aggregate partials use
ReplacingMergeTree keyed so that a replayed Kafka message writes rows identical to the ones it
wrote before, which collapse; readers use FINAL. Reference data, tokens and batch answers are
ReplacingMergeTree keyed by their id with a version, so the newest upsert wins.

Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from typing import NamedTuple

DATABASE = "fundwatch"


class Migration(NamedTuple):
    version: int
    name: str
    statements: tuple[str, ...]


_ENUM_DIRECTION = "Enum8('debit' = 1, 'credit' = 2)"
_ENUM_GRAIN = "Enum8('hour' = 1, 'day' = 2)"
_ENUM_REPLAY_KIND = "Enum8('gained' = 1, 'lost' = 2, 'regraded' = 3)"


def _rebuild_partials(table: str, key: str, label: str, where: str) -> str:
    """INSERT … SELECT of aggregate partials per (key, grain, window, currency, message) from the
    raw transactions. Windows as models/windows.py cuts them: the UTC hour, and the Beijing day
    (UTC+8, no daylight saving) by arithmetic on epoch seconds, which both backends do alike
    (both branches cast to UInt32: 18.16 finds no common type for UInt64 and Int64)."""
    return f"""INSERT INTO {DATABASE}.{table}
            ({key}, grain, window_start, currency, msg_id, {label},
             inflow, outflow, n_in, n_out, counterparties)
        SELECT {key}, CAST(grain AS {_ENUM_GRAIN}), toDateTime(start, 'UTC'), currency, msg_id,
               max({label}),
               sumIf(amount, direction = 'credit'), sumIf(amount, direction = 'debit'),
               toUInt32(countIf(direction = 'credit')), toUInt32(countIf(direction = 'debit')),
               groupUniqArray(counterparty_account)
        FROM (
            SELECT {key}, {label}, currency, msg_id, direction, amount, counterparty_account,
                   arrayJoin(['hour', 'day']) AS grain,
                   if(grain = 'hour',
                      toUInt32(intDiv(toUInt32(booked_at), 3600) * 3600),
                      toUInt32(intDiv(toUInt32(booked_at) + 28800, 86400) * 86400 - 28800)) AS start
            FROM {DATABASE}.raw_transactions FINAL
            {where}
        )
        GROUP BY {key}, grain, start, currency, msg_id"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "records, aggregates, reference data, tokens, batch answers",
        (
            # Raw transactions as booked, enriched with the account's institution, role and region
            # at processing time so drill-down needs no join.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.raw_transactions (
                bank_code String,
                record_id String,
                account_id String,
                direction {_ENUM_DIRECTION},
                amount Decimal(18, 2),
                currency String,
                booked_at DateTime('UTC'),
                counterparty_account String,
                counterparty_bank String,
                counterparty_name Nullable(String),
                channel String,
                instruction_id Nullable(String),
                purpose Nullable(String),
                product_id Nullable(String),
                balance_after Nullable(Decimal(18, 2)),
                batch_id String,
                msg_id String,
                received_at DateTime('UTC'),
                institution_id String,
                account_role String,
                region String
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(booked_at)
            ORDER BY (account_id, bank_code, record_id)""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.raw_balances (
                bank_code String,
                record_id String,
                account_id String,
                as_of DateTime('UTC'),
                balance Decimal(18, 2),
                customer_liabilities Nullable(Decimal(18, 2)),
                currency String,
                batch_id String,
                msg_id String,
                received_at DateTime('UTC'),
                institution_id String,
                account_role String,
                region String
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(as_of)
            ORDER BY (account_id, bank_code, record_id)""",
            # Aggregate partials: one row per (key, grain, window) per Kafka message. A replayed
            # message rewrites the same rows (same msg_id), which collapse; read with FINAL and
            # sum over msg_id. Distinct counterparties are the union of the partials' arrays.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.agg_account (
                account_id String,
                grain {_ENUM_GRAIN},
                window_start DateTime('UTC'),
                msg_id String,
                institution_id String,
                inflow Decimal(18, 2),
                outflow Decimal(18, 2),
                n_in UInt32,
                n_out UInt32,
                counterparties Array(String)
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(window_start)
            ORDER BY (account_id, grain, window_start, msg_id)""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.agg_institution (
                institution_id String,
                grain {_ENUM_GRAIN},
                window_start DateTime('UTC'),
                msg_id String,
                region String,
                inflow Decimal(18, 2),
                outflow Decimal(18, 2),
                n_in UInt32,
                n_out UInt32,
                counterparties Array(String)
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(window_start)
            ORDER BY (institution_id, grain, window_start, msg_id)""",
            # Per-account running state, snapshotted by workers so that it comes back when the
            # broker kept nothing (the embedded broker is memory-only).
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.account_state (
                account_id String,
                state String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY account_id""",
            # Reference data: the whole item as JSON plus the columns readers filter on.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.ref_institutions (
                institution_id String,
                region String,
                type String,
                doc String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY institution_id""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.ref_accounts (
                account_id String,
                bank_code String,
                institution_id String,
                role String,
                doc String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY account_id""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.ref_related_parties (
                party_id String,
                institution_id String,
                doc String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY party_id""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.ref_products (
                product_id String,
                institution_id String,
                doc String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY product_id""",
            # Bearer tokens, stored as SHA-256 of the secret; never the secret itself.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.tokens (
                token_id String,
                token_hash String,
                role String,
                bank_code String,
                region String,
                created_at DateTime('UTC'),
                revoked UInt8,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY token_id""",
            # The first answer to each batch, so a re-sent batch_id gets it back unchanged.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.batch_answers (
                bank_code String,
                batch_id String,
                answer String,
                received_at DateTime('UTC')
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (bank_code, batch_id)""",
            # The de-duplication memory: every (bank_code, record_id) ever accepted. Written by the
            # gateway before it answers, so it holds even for records not yet processed.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.ingest_keys (
                bank_code String,
                record_id String,
                batch_id String,
                accepted_at DateTime('UTC')
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (bank_code, record_id)""",
        ),
    ),
    Migration(
        2,
        "alerts with their history, webhook subscriptions and deliveries",
        (
            # Every state change of an alert is an event; the current state is their fold.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.alert_events (
                alert_id String,
                event_time DateTime('UTC'),
                event_type String,
                typology String,
                severity String,
                status String,
                institution_id String,
                region String,
                actor String,
                doc String,
                version UInt64
            ) ENGINE = MergeTree()
            PARTITION BY toYYYYMM(event_time)
            ORDER BY (alert_id, version)""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.alerts (
                alert_id String,
                typology String,
                severity String,
                status String,
                score Float64,
                institution_id String,
                region String,
                amount Decimal(18, 2),
                window_start DateTime('UTC'),
                window_end DateTime('UTC'),
                created_at DateTime('UTC'),
                updated_at DateTime('UTC'),
                doc String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY alert_id""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.subscriptions (
                subscription_id String,
                owner_token_id String,
                url String,
                doc String,
                deleted UInt8,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY subscription_id""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.deliveries (
                subscription_id String,
                webhook_id String,
                alert_id String,
                state String,
                attempts UInt32,
                next_attempt_at DateTime('UTC'),
                doc String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (subscription_id, webhook_id)""",
        ),
    ),
    Migration(
        3,
        "per-institution detection state",
        (
            # The institution agent's running state (products, growth trend, clearing mirrors),
            # snapshotted like account_state and for the same reason.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.institution_state (
                institution_id String,
                state String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY institution_id""",
        ),
    ),
    Migration(
        4,
        "the outbox of accepted records and what the workers have made durable of it",
        (
            # Every records message the gateway accepted, written before the 202 with the keys
            # and the answer: the embedded broker keeps nothing on disk, so a 202 is a promise
            # only once the message is here. The payload is the message exactly as published.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.outbox (
                msg_id String,
                partition UInt32,
                payload String,
                received_at DateTime('UTC')
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(received_at)
            ORDER BY msg_id""",
            # What workers have made durable (state snapshots written) of each message: its
            # records stage names how many institution parts it sent on, and each institution
            # part has a row of its own. A message with all of them is done; at start the
            # gateway publishes again every outbox message that is not.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.outbox_done (
                msg_id String,
                stage String,
                parts UInt16,
                done_at DateTime('UTC')
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(done_at)
            ORDER BY (msg_id, stage)""",
        ),
    ),
    Migration(
        5,
        "aggregate partials per currency, rebuilt from the raw transactions",
        (
            # Figures in different currencies are never added together (CONTRACT.md §3), so the
            # partials carry their currency. New tables rather than a column added to agg_account
            # and agg_institution: their sorting key has no currency, so one message's CNY and USD
            # partials of one account and window would collapse into one row. currency comes
            # after window_start in the key, so a read of one account's windows still narrows by
            # the primary index. The old tables stay as they were and are no longer written.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.agg_account_ccy (
                account_id String,
                grain {_ENUM_GRAIN},
                window_start DateTime('UTC'),
                currency String,
                msg_id String,
                institution_id String,
                inflow Decimal(18, 2),
                outflow Decimal(18, 2),
                n_in UInt32,
                n_out UInt32,
                counterparties Array(String)
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(window_start)
            ORDER BY (account_id, grain, window_start, currency, msg_id)""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.agg_institution_ccy (
                institution_id String,
                grain {_ENUM_GRAIN},
                window_start DateTime('UTC'),
                currency String,
                msg_id String,
                region String,
                inflow Decimal(18, 2),
                outflow Decimal(18, 2),
                n_in UInt32,
                n_out UInt32,
                counterparties Array(String)
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMM(window_start)
            ORDER BY (institution_id, grain, window_start, currency, msg_id)""",
            # The partials of everything processed before, made again from the raw transactions
            # (which keep each record's currency and message id) exactly as the workers make them
            # (streams/rows.py): the same rows under the same keys, so running this twice, or
            # beside a worker writing the same message, adds nothing once FINAL collapses them.
            _rebuild_partials("agg_account_ccy", "account_id", "institution_id", ""),
            # An institution's flows leave out moves between two of its own accounts
            # (streams/rows.py institution_side); the counterparty's institution is looked up in
            # the reference data, as the workers do.
            _rebuild_partials(
                "agg_institution_ccy",
                "institution_id",
                "region",
                f"""WHERE institution_id != ''
                  AND (counterparty_account, institution_id) NOT IN (
                      SELECT account_id, institution_id FROM {DATABASE}.ref_accounts FINAL
                      WHERE institution_id != '')""",
            ),
        ),
    ),
    Migration(
        6,
        "the digest of each answered batch's records",
        (
            # A batch_id re-sent with other records is refused (409) instead of being answered as
            # the first one: the gateway compares a digest of the records with the first one's.
            # A table of its own, written just before the answer, rather than an ALTER of the
            # shipped batch_answers; an answer stored before this table existed has no digest and
            # is returned to any re-send, as it was then.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.batch_digests (
                bank_code String,
                batch_id String,
                digest String,
                received_at DateTime('UTC')
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (bank_code, batch_id)""",
        ),
    ),
    Migration(
        7,
        "alert actions' audit trail, suppressions and their audit",
        (
            # Every desk action on an alert and every reopening by the system, append-only: who
            # (the token's id and role, never the token), when, the status before and after, the
            # disposition or assignee given, the note. case_state is the case the action left
            # (schemas/actions.py AlertCase): the newest per alert is what the gateway publishes
            # again at start for the workers to follow.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.alert_actions (
                alert_id String,
                at DateTime('UTC'),
                actor_id String,
                actor_role String,
                action String,
                previous_status String,
                new_status String,
                disposition String,
                assignee String,
                note String,
                reason String,
                institution_id String,
                region String,
                case_state String,
                version UInt64
            ) ENGINE = MergeTree()
            PARTITION BY toYYYYMM(at)
            ORDER BY (alert_id, version)""",
            # Suppressions as they stand (the newest row per id; a removed one keeps a row with
            # deleted = 1), and their creation and removal, append-only.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.suppressions (
                suppression_id String,
                region String,
                until DateTime('UTC'),
                deleted UInt8,
                doc String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY suppression_id""",
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.suppression_events (
                suppression_id String,
                at DateTime('UTC'),
                event String,
                actor_id String,
                actor_role String,
                doc String,
                version UInt64
            ) ENGINE = MergeTree()
            PARTITION BY toYYYYMM(at)
            ORDER BY (suppression_id, version)""",
        ),
    ),
    Migration(
        8,
        "saved replay reports: what each run judged with, the alerts gained, lost and regraded, counts",
        (
            # `fundwatch replay --save` (services/replay/store.py): one row per saved replay, its
            # period and what each run judged with (schemas/replays.py SavedReplay). Written after
            # the rows below, so a replay listed is whole. Tables of their own: a replay never
            # writes to the live alerts or their history.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.replays (
                replay_id String,
                saved_at DateTime('UTC'),
                since DateTime('UTC'),
                until DateTime('UTC'),
                doc String
            ) ENGINE = ReplacingMergeTree()
            ORDER BY replay_id""",
            # Each alert one run raised and the other did not, or graded differently, with its
            # typology, institution, region and severity (as the run that raised it has it): a
            # desk reads the rows of its region by the region prefix.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.replay_alerts (
                replay_id String,
                kind {_ENUM_REPLAY_KIND},
                alert_id String,
                typology String,
                institution_id String,
                region String,
                severity String,
                baseline_severity String,
                amount String,
                window_start String,
                window_end String
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (replay_id, region, kind, alert_id)""",
            # Both runs' alerts counted per typology, institution and region, unchanged ones
            # included: every grouping a reader shows is summed from its own region's cells.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.replay_counts (
                replay_id String,
                typology String,
                institution_id String,
                region String,
                baseline UInt32,
                candidate UInt32,
                gained UInt32,
                lost UInt32,
                regraded UInt32
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (replay_id, region, institution_id, typology)""",
        ),
    ),
    Migration(
        9,
        "each answered batch's answer, records digest and accepted record keys in one row",
        (
            # What the gateway remembers of a batch, written in one insert instead of three (the
            # answer, the digest and a row per record key): each insert makes a part of its own,
            # a fixed cost that was most of a group commit's. One row is also one block, so the
            # digest and the keys can never be stored without the answer or the other way round.
            # digest is '' for a writer that keeps none. The earlier tables are still read at
            # start, for the batches answered before this one existed; nothing writes them now.
            f"""CREATE TABLE IF NOT EXISTS {DATABASE}.batches (
                bank_code String,
                batch_id String,
                answer String,
                digest String,
                record_ids Array(String),
                received_at DateTime('UTC')
            ) ENGINE = ReplacingMergeTree()
            ORDER BY (bank_code, batch_id)""",
        ),
    ),
)
