"""What a simulated province looks like to FundWatch, beyond its money: which optional fields the
banks fill in, and in which order their batches arrive. ``fundwatch eval`` measures the detectors
on each variant of the same province (the same records, the same ground truth).

Fields (CONTRACT.md §3 makes these optional). The simulator writes every field; a variant takes
some out of the pushed records (and of the reference data), never out of what the ground truth
was made from: a repayment without ``product_id`` is still a repayment of that product.

- ``product_id`` on repayments (a borrower paying into custody, both legs) and on payouts (an
  instructed custody debit to an investor, both legs); loans and subscriptions keep theirs;
- ``product_id`` on borrowers' accounts in the reference data;
- ``purpose``, ``counterparty_name`` and ``balance_after`` on every transaction;
- ``instruction_id`` on credits (a debit's stays: no instruction on a custody debit is a fact the
  contract defines, misappropriation's signal).

Push orders (one list of batches, pushed one after another):

- ``realtime``: every bank's batches as their hour ends, banks interleaved;
- ``day-end``: each bank's day in one go after the day ends, bank after bank;
- ``late-banks``: day-end files, the second bank's a day late and the fourth's three days late;
- ``bank-by-bank``: one bank's whole period, then the next bank's;
- ``resent-day``: real time, but the busiest bank's feed is down for the third day, which it
  sends again three days later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.fields import epoch_seconds
from services.simulator.violations_base import _day_of

DAY_S = 86_400

ORDERS = ("realtime", "day-end", "late-banks", "bank-by-bank", "resent-day")


@dataclass(frozen=True)
class Fields:
    """Which optional fields the pushed records and reference data carry."""

    product_on_repayments: bool = True
    product_on_payouts: bool = True
    borrower_products: bool = True
    purpose: bool = True
    instruction_on_credits: bool = True
    counterparty_name: bool = True
    balance_after: bool = True

    @property
    def complete(self) -> bool:
        return all(vars(self).values())


SPARSE = Fields(
    product_on_repayments=False,
    purpose=False,
    instruction_on_credits=False,
    counterparty_name=False,
    balance_after=False,
)


@dataclass(frozen=True)
class ProvinceVariant:
    name: str
    description: str
    fields: Fields = field(default_factory=Fields)
    order: str = "realtime"


VARIANTS: dict[str, ProvinceVariant] = {
    v.name: v
    for v in (
        ProvinceVariant("baseline", "every optional field; banks push in real time"),
        ProvinceVariant(
            "sparse",
            "no product_id on repayments, no purpose, counterparty_name or balance_after, no "
            "instruction_id on credits; real time",
            SPARSE,
        ),
        ProvinceVariant(
            "untagged",
            "as sparse, and no product_id on payouts nor on borrowers' accounts either (loans and "
            "subscriptions keep theirs); real time",
            Fields(**{**vars(SPARSE), "product_on_payouts": False, "borrower_products": False}),
        ),
        ProvinceVariant(
            "day-end", "every field; each bank sends its day in one go after it ends", order="day-end"
        ),
        ProvinceVariant(
            "late-banks",
            "day-end files, one bank's a day late and another's three days late",
            order="late-banks",
        ),
        ProvinceVariant(
            "bank-by-bank", "one bank's whole period, then the next bank's", order="bank-by-bank"
        ),
        ProvinceVariant(
            "resent-day",
            "real time; the busiest bank's feed down for a day, sent again three days later",
            order="resent-day",
        ),
    )
}


def selected(names: str) -> list[ProvinceVariant]:
    """``"all"`` or a comma-separated list of variant names, in the registry's order."""
    if names.strip() == "all":
        return list(VARIANTS.values())
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    return [v for v in VARIANTS.values() if v.name in wanted]


# -- fields --------------------------------------------------------------------------------------


def _movement(record: dict[str, Any], roles: Mapping[str, str]) -> str | None:
    """ "repayment", "payout" or None for a transaction record (either leg)."""
    mine, theirs = roles.get(record["account_id"]), roles.get(record["counterparty_account"])
    credit = record["direction"] == "credit"
    if mine == "customer_custody":
        if theirs == "borrower" and credit:
            return "repayment"
        if theirs == "investor" and not credit and record.get("instruction_id"):
            return "payout"
    elif mine == "borrower" and theirs == "customer_custody" and not credit:
        return "repayment"
    elif mine == "investor" and theirs == "customer_custody" and credit and record.get("instruction_id"):
        return "payout"
    return None


def strip_record(record: dict[str, Any], roles: Mapping[str, str], fields: Fields) -> dict[str, Any]:
    """The record as a bank that leaves those fields out would send it."""
    if record.get("kind") != "transaction" or fields.complete:
        return record
    out = dict(record)
    if "product_id" in out:
        kind = _movement(record, roles)
        if (kind == "repayment" and not fields.product_on_repayments) or (
            kind == "payout" and not fields.product_on_payouts
        ):
            del out["product_id"]
    if not fields.instruction_on_credits and out["direction"] == "credit":
        out.pop("instruction_id", None)
    for name, keep in (
        ("purpose", fields.purpose),
        ("counterparty_name", fields.counterparty_name),
        ("balance_after", fields.balance_after),
    ):
        if not keep:
            out.pop(name, None)
    return out


def strip_batch(batch: dict[str, Any], roles: Mapping[str, str], fields: Fields) -> dict[str, Any]:
    if fields.complete:
        return batch
    return {**batch, "records": [strip_record(r, roles, fields) for r in batch["records"]]}


def undecidable_labels(labels: Iterable[Mapping[str, Any]], fields: Fields) -> set[str]:
    """Positive labels that nothing the variant pushes can settle, by their ids: a product's payout
    coverage alone (no yield signal beside it) when neither payouts nor repayments name a product
    and borrowers' accounts do not either, so no record ties the product's money to it (the
    subsidised product was sold before the data begins: no tagged loan or subscription of it).
    Counted apart by ``fundwatch eval``, not as misses."""
    if fields.product_on_payouts or fields.product_on_repayments or fields.borrower_products:
        return set()
    return {
        str(label["label_id"])
        for label in labels
        if label.get("typology") == "excess_return"
        and label.get("kind") == "positive"
        and label.get("what") == "payout_coverage"
    }


def strip_reference(payloads: Mapping[str, list[dict]], fields: Fields) -> dict[str, list[dict]]:
    """The reference data as pushed: borrowers' accounts without their product when so."""
    out = dict(payloads)
    if not fields.borrower_products:
        out["accounts"] = [
            {**a, "product_id": None} if a.get("role") == "borrower" else a for a in payloads["accounts"]
        ]
    return out


# -- push orders ---------------------------------------------------------------------------------


def _time(batch: dict[str, Any]) -> int:
    record = batch["records"][0]
    return epoch_seconds(record.get("booked_at") or record["as_of"])


def _day_end(batch: dict[str, Any], days_late: int = 0) -> int:
    """When a day-end file holding this batch goes out: midnight after its Beijing day."""
    day = epoch_seconds(f"{_day_of(_time(batch))}T00:00:00+08:00")
    return day + (1 + days_late) * DAY_S


def push_order(batches: Mapping[str, list[dict[str, Any]]], order: str) -> list[dict[str, Any]]:
    """Every bank's batches (each bank's in time order) in the order ``order`` pushes them."""
    banks = sorted(batches)
    tagged = [(bank, n, batch) for bank in banks for n, batch in enumerate(batches[bank])]
    if order == "realtime":
        key = lambda t: (_time(t[2]), t[0], t[1])  # noqa: E731
    elif order == "day-end":
        key = lambda t: (_day_end(t[2]), t[0], t[1])  # noqa: E731
    elif order == "late-banks":
        late = {banks[i]: days for i, days in ((1, 1), (3, 3)) if i < len(banks)}
        key = lambda t: (_day_end(t[2], late.get(t[0], 0)), t[0], t[1])  # noqa: E731
    elif order == "bank-by-bank":
        key = lambda t: (t[0], t[1])  # noqa: E731
    elif order == "resent-day":
        key = _resent_key(batches)
    else:
        raise ValueError(f"unknown push order {order!r}; known: {', '.join(ORDERS)}")
    return [batch for *_, batch in sorted(tagged, key=key)]


def _resent_key(batches: Mapping[str, list[dict[str, Any]]]):
    busiest = max(sorted(batches), key=lambda bank: sum(len(b["records"]) for b in batches[bank]))
    days = sorted({_day_of(_time(b)) for b in batches[busiest]})
    down = days[2] if len(days) > 3 else None

    def key(t: tuple[str, int, dict[str, Any]]) -> tuple:
        bank, n, batch = t
        at = _time(batch)
        if bank == busiest and _day_of(at) == down:
            at = _day_end(batch, 3)  # sent again three days after the day it missed
        return (at, bank, n)

    return key


def account_roles(accounts: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {a["account_id"]: str(a["role"]) for a in accounts}
