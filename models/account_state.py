"""Per-account running state: a pure fold of an account's records, one message at a time.

State is a plain dict so it serialises to a Faust table and to ClickHouse as JSON unchanged.
``recent`` remembers the last messages folded in, so a message redelivered after a crash is not
counted twice, whichever broker delivered it. It is the worker's only guard against a redelivery
(the detectors keep no record ids: models/detectors/common), so it covers more than a crash can
bring back: a redelivery holds what was taken since the last commit (1 s), and even a busy custody
account is in far fewer messages than this in a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.messages import BalanceRecord, TxnRecord

RECENT_MESSAGES = 256


def empty_state() -> dict[str, Any]:
    return {
        "inflow_cents": 0,
        "outflow_cents": 0,
        "n_in": 0,
        "n_out": 0,
        "first_seen": None,
        "last_seen": None,
        "balance_cents": None,
        "balance_at": None,
        "liabilities_cents": None,
        "recent": [],
    }


def already_applied(state: dict[str, Any] | None, msg_id: str) -> bool:
    return state is not None and msg_id in state["recent"]


def apply(
    state: dict[str, Any] | None, msg_id: str, records: Iterable[TxnRecord | BalanceRecord]
) -> dict[str, Any]:
    """The account's state after one message's records (all of the same account)."""
    new = empty_state() if state is None else {**state, "recent": list(state["recent"])}
    if msg_id in new["recent"]:
        return new
    records = records if isinstance(records, list) else list(records)
    # summed per direction at once: a busy account's message holds hundreds of transactions
    transactions = [record for record in records if type(record) is TxnRecord]
    credits = [record.amount_cents for record in transactions if record.credit]
    debits = [record.amount_cents for record in transactions if not record.credit]
    new["inflow_cents"] += sum(credits)
    new["n_in"] += len(credits)
    new["outflow_cents"] += sum(debits)
    new["n_out"] += len(debits)
    times = [record.booked_at for record in transactions]
    for record in records:
        if type(record) is BalanceRecord:
            # keep the latest snapshot by event time, so late records do not roll it back
            if new["balance_at"] is None or record.as_of >= new["balance_at"]:
                new["balance_cents"] = record.balance_cents
                new["balance_at"] = record.as_of
                new["liabilities_cents"] = record.customer_liabilities_cents
            times.append(record.as_of)
    if times:
        first, last = min(times), max(times)
        new["first_seen"] = first if new["first_seen"] is None else min(new["first_seen"], first)
        new["last_seen"] = last if new["last_seen"] is None else max(new["last_seen"], last)
    new["recent"].append(msg_id)
    del new["recent"][:-RECENT_MESSAGES]
    return new
