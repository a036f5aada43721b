"""The kind of a day's counterparties, read from the reference data when a day is judged.

The feature state keeps no counterparty account, only a bounded sample of hashes per day and
direction, with the cents of each (models/features/counterparties.py). What those hashes were is read at judging time
from a map hash -> kind of the REGISTERED accounts, built once from the reference data (and
changed item by item when an account changes): the state and its bounds stay as they are, and a
day judged again after a reference change sees the counterparties as they are registered now.

Kinds (from the account's role, CONTRACT.md §3):

- ``institution``: an account of an institution: customer custody, payment reserve, own
  operating, related party; an ``other`` account registered to an institution;
- ``person``: a customer's account: investor, borrower, or an ``other`` account registered to
  no institution (a customer that is a company is still not a platform's account). The holder's
  name is not read: an ``other`` account is judged by whether an institution holds it;
- unknown: a counterparty that is not registered (another bank's customer, a typo, a cash
  desk). It is not in the map and never counts as evidence of either kind.

Why it matters: an investor's subscription or payout goes to or comes from a platform's custody
account; money passed on from customer to customer does not, though one day of one account
looks alike otherwise (docs/anomaly-features.md, "What was tried").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.features.counterparties import CounterpartySample, counterparty_hash_of, distinct_count

PERSON = "person"
INSTITUTION = "institution"
INSTITUTION_ROLES = frozenset({"customer_custody", "payment_reserve", "own_operating", "related_party"})
PERSON_ROLES = frozenset({"investor", "borrower"})


def _text(value: Any) -> str:
    """An enum member or a string as its plain string value ("" for None)."""
    if value is None:
        return ""
    return value if type(value) is str else str(getattr(value, "value", value))


def account_kind(account: Mapping[str, Any]) -> str | None:
    """The kind of a registered account (a reference item), or None for a role not listed."""
    role = _text(account.get("role"))
    if role in INSTITUTION_ROLES:
        return INSTITUTION
    if role in PERSON_ROLES:
        return PERSON
    if role == "other":
        return INSTITUTION if _text(account.get("institution_id")) else PERSON
    return None


def kind_entry(account: Mapping[str, Any]) -> tuple[int, str] | None:
    """(counterparty hash, kind) of a registered account, or None when it has neither."""
    hashed = counterparty_hash_of(_text(account.get("account_id")))
    kind = account_kind(account)
    if hashed is None or kind is None:
        return None
    return hashed, kind


def kind_map(accounts: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """Counterparty hash -> kind of every registered account."""
    return dict(entry for account in accounts if (entry := kind_entry(account)) is not None)


def person_cents(sample: CounterpartySample, kinds: Mapping[int, str] | None) -> float:
    """The cents of one day and direction that came from (or went to) customers' registered
    accounts (kind ``person``). Exact while the sample holds every counterparty of the day;
    beyond, the kept counterparties are a uniform draw of them, so their person cents are scaled
    by the estimated counterparties over the kept ones. Unregistered counterparties count for
    nothing (no evidence), nor does a day without a map."""
    if not kinds or not sample.hashes:
        return 0.0
    kept = sum(sample.cents_of(n) for n, h in enumerate(sample.hashes) if kinds.get(h) == PERSON)
    if not sample.truncated or not kept:
        return float(kept)
    return kept * distinct_count(sample) / len(sample.hashes)
