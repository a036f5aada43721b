"""The worker's detection steps in-process: batches in, alerts out, with no broker, no ClickHouse
and no HTTP, so that the push orders of ``fundwatch eval --engine direct`` and the tests that
compare them cost seconds, not minutes.

It does what the real path does to a batch, in the same order: the gateway's record decoding and
its split into one message per partition of ``crc32(account_id)`` (``<bank>/<batch_id>/<n>``); the
records agent stepping each account through each message (models/account_detection) and
sweeping the silent accounts whose open day their bank's event time has passed
(models/anomaly_sweep), then
re-keying the records institution-level detectors need by institution, stamped with the pushing
bank (streams/records.py ``_forward``); the institution agent stepping each institution
(models/institution_detection). What it leaves out is what the detectors never see: the
gateway's de-duplication and ownership checks (the simulator sends neither duplicates nor
foreign accounts) and ClickHouse. ``push_message`` steps one message at a time; ``push_take``
steps several as the worker takes them together (each account and institution once over its
messages), which changes how often an alert is revised but not its figures
(tests/unit/test_detection_steps.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from models.account_detection import step_account_messages
from models.anomaly_sweep import SweepIndex, anomaly_state_of, sweep_due
from models.detectors import DetectContext
from models.institution_detection import institution_records, step_institution_messages
from schemas.messages import TxnRecord, partition_for
from schemas.records import RecordDecoder
from services.gateway.reader import to_message_record
from streams.forwards import forwarded_id

PARTITIONS = 4

_decoder = RecordDecoder()
_encode = msgspec.json.Encoder().encode


def decode_records(raw_records: Iterable[dict[str, Any]]) -> list[Any]:
    """Records as the gateway hands them to workers (cents, epoch seconds)."""
    return [to_message_record(_decoder.decode(_encode(raw))) for raw in raw_records]


class InProcessPipeline:
    """Account and institution states and the alerts they raised, fed one batch at a time."""

    def __init__(
        self,
        ctx: DetectContext,
        partitions: int = PARTITIONS,
        gate: Callable[[list[tuple[str, Any]]], list[tuple[str, Any]]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.partitions = partitions
        # what the worker's sink does to a take's changed alerts before they are published: the
        # anomaly budget (streams/anomaly_budget.AnomalyBudgetGate); None lets every alert out
        self.gate = gate
        self.accounts: dict[str, dict[str, Any]] = {}
        self.institutions: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []  # every alert revision, as the alerts topic carries them
        self.records = 0
        self.sweeps: dict[int, SweepIndex] = {}  # per records partition, as the worker keeps them

    def push(self, batch: dict[str, Any], at: int = 0) -> None:
        """One batch (``{"batch_id", "bank_code", "records"}``) through both agents."""
        bank = batch["bank_code"]
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for record in decode_records(batch["records"]):
            by_partition[partition_for(record.account_id, self.partitions)].append(record)
        for partition, records in sorted(by_partition.items()):
            self.push_message(bank, f"{bank}/{batch['batch_id']}/{partition}", records, at)

    def push_message(self, bank: str, msg_id: str, records: list[Any], at: int = 0) -> None:
        """One records message (one partition's share of a batch, already decoded) through both
        agents, as a worker takes it: how ``fundwatch replay`` feeds the records it read back."""
        self.push_take([(bank, msg_id, records)], at)

    def push_take(self, messages: list[tuple[str, str, list[Any]]], at: int = 0) -> None:
        """Records messages (bank, id, decoded records) taken together, as the worker's agents take
        them (streams/records.py, streams/institutions.py): each account stepped once over its
        messages in order, the sweep after all of them, then each institution once over its parts."""
        per_message = [(bank, msg_id, records, _by_account(records)) for bank, msg_id, records in messages]
        steps: dict[str, list[tuple[str, list[Any]]]] = defaultdict(list)
        for _, msg_id, _, by_account in per_message:
            for account_id, mine in by_account.items():
                steps[account_id].append((msg_id, mine))
        for account_id, parts in steps.items():
            # the old state is replaced right after: consumed, not copied (as the worker does)
            state, changed = step_account_messages(
                self.ctx, self.accounts.get(account_id), account_id, parts, at, consume=True
            )
            self.accounts[account_id] = state
            self._emit(changed)
        for bank, _, records, by_account in per_message:
            if by_account:
                self._sweep(bank, records, by_account, at)
        institution_steps: dict[str, list[tuple[str, list[TxnRecord]]]] = defaultdict(list)
        for bank, msg_id, records, _ in per_message:
            for institution_id, part in sorted(institution_records(self.ctx, records).items()):
                # stamped with the bank that pushed it, as the records agent forwards it
                stamped = [msgspec.structs.replace(r, bank_code=bank) for r in part]
                institution_steps[institution_id].append((forwarded_id(msg_id), stamped))
        for institution_id, parts in institution_steps.items():
            state, changed = step_institution_messages(
                self.ctx, self.institutions.get(institution_id), institution_id, parts, at, consume=True
            )
            self.institutions[institution_id] = state
            self._emit(changed)
        self.records += sum(len(records) for _, _, records in messages)

    def _sweep(self, bank: str, records: list[Any], by_account: dict[str, list[Any]], at: int) -> None:
        """The records agent's sweep after a message (streams/records.py): the bank's event time
        in the partition moves on, and silent accounts whose open day it passed are judged."""
        partition = partition_for(next(iter(by_account)), self.partitions)
        index = self.sweeps.setdefault(partition, SweepIndex())
        index.observe(bank, records, self.ctx.event_time_ceiling)
        for account_id in by_account:
            index.track(account_id, bank, anomaly_state_of(self.accounts.get(account_id)))
        for account_id, state, changed in sweep_due(self.ctx, index, self.accounts.get, at):
            self.accounts[account_id] = state
            self._emit(changed)

    def review(self, institution_ids: Iterable[str], at: int = 0) -> None:
        """A product review of each institution (what a product upsert sends): reference-only
        findings before any record."""
        for institution_id in sorted(institution_ids):
            state, changed = step_institution_messages(
                self.ctx, self.institutions.get(institution_id), institution_id, [("review/eval", [])], at
            )
            self.institutions[institution_id] = state
            self._emit(changed)

    def _emit(self, changed: list[tuple[str, Any]]) -> None:
        if self.gate is not None and changed:
            changed = self.gate(changed)
        self.events.extend(msgspec.to_builtins(alert) for _, alert in changed)

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last revision of every alert, by alert id."""
        out: dict[str, dict[str, Any]] = {}
        for data in self.events:
            out[data["alert_id"]] = data
        return out


def _by_account(records: list[Any]) -> dict[str, list[Any]]:
    """One message's records per account, in order."""
    by_account: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        by_account[record.account_id].append(record)
    return by_account
