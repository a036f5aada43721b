"""What several institution-level detectors read of one message's records alike: the records of
the institution's custody and reserve accounts, found with one reference look-up per account, and
the latest record of each bank among them, all that a watermark over banks reads
(models/detectors/common.advance_sources).

A detector's ``detect`` makes its own view of the message it is given (``view_of``): a pure function
of the records and the reference data, so no detector depends on which ran before it. The
institution's step (models/institution_detection) makes one per message and hands it to each
detector's ``detect_view``, so that what they read alike is read once.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from models.detectors import product_flows as pf
from models.detectors.common import advance_sources, source_of
from models.detectors.context import DetectContext
from schemas.messages import TxnRecord

_booked_at = attrgetter("booked_at")


class OwnAccounts(dict[str | None, pf.OwnAccount | None]):
    """Account id -> product_flows.own_account of it: (role, bank code) of one of the
    institution's own accounts, else None. Several detectors ask this of every record and
    counterparty: each account is read once per message."""

    def __init__(self, ctx: DetectContext, institution_id: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.institution_id = institution_id

    def __missing__(self, account_id: str | None) -> pf.OwnAccount | None:
        found = self[account_id] = pf.own_account(self.ctx, self.institution_id, account_id)
        return found


class MessageView:
    """One message's records as the institution's detectors read them."""

    __slots__ = ("ctx", "institution_id", "msg_id", "records", "custody", "sources", "own", "_flows")

    def __init__(self, ctx: DetectContext, institution_id: str, msg_id: str, records: list[Any]) -> None:
        self.ctx = ctx
        self.institution_id = institution_id
        self.msg_id = msg_id
        self.records = records
        # the transactions booked on the institution's custody and reserve accounts (those of
        # product_flows.of_institution on a custody account): the sources of product flows and
        # of investors' payments. A message holds few accounts and many records: each account is
        # judged once, then the records are kept by a set look-up.
        accounts = {record.account_id for record in records if isinstance(record, TxnRecord)}
        mine = {
            account_id
            for account_id in accounts
            if ctx.institution_id(account_id) == institution_id and pf.is_custody(ctx, account_id)
        }
        self.custody: list[TxnRecord] = (
            [r for r in records if r.account_id in mine and isinstance(r, TxnRecord)] if mine else []
        )
        self.sources = _latest_per_bank(ctx, self.custody)
        self.own = OwnAccounts(ctx, institution_id)
        self._flows: list[pf.Flow] | None = None

    def product_flows(self) -> list[pf.Flow]:
        """product_flows.custody_flows of the custody records, read for the first detector that
        asks and shared by the others (each folds them into its own state)."""
        if self._flows is None:
            self._flows = pf.custody_flows(self.ctx, self.institution_id, self.custody)
        return self._flows


def _latest_per_bank(ctx: DetectContext, records: list[TxnRecord]) -> list[TxnRecord]:
    """One record per bank that sent some of ``records``, one of its latest, in the order the
    banks first appear: all that common.advance_sources reads of them (each bank's latest event
    time), so it advances a watermark over these as over all of them."""
    banks = {record.bank_code for record in records}
    if len(banks) == 1 and "" not in banks:
        # the worker stamps a message's records with the bank that sent it: one bank, and max()
        # keeps the first of the latest as the loop below does
        return [max(records, key=_booked_at)]
    latest: dict[str, TxnRecord] = {}
    bank_of: dict[str, str] = {}  # an account's records all come from its bank
    for record in records:
        bank = record.bank_code  # the bank as advance_sources finds it (common.source_of)
        if not bank:
            bank = bank_of.get(record.account_id)
            if bank is None:
                bank = bank_of[record.account_id] = source_of(ctx, record)
        best = latest.get(bank)
        if best is None or record.booked_at > best.booked_at:
            latest[bank] = record
    return list(latest.values())


def view_of(ctx: DetectContext, institution_id: str, msg_id: str, records: list[Any]) -> MessageView:
    """The message's records as the institution's detectors read them."""
    return MessageView(ctx, institution_id, msg_id, records)


def fold_product_flows(view: MessageView, st: dict[str, Any]) -> None:
    """product_flows.fold then prune of the message's records of the institution into ``st``."""
    pf.fold_flows(st, view.product_flows())
    advance_sources(st, view.ctx, view.sources)  # as over all of view.custody (fold_custody)
    pf.prune(st)
