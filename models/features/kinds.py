"""The kind of a day's counterparties, read from the reference data when a day is judged.

The feature state keeps no counterparty account, only a bounded sample of hashes per day and
direction (models/features/counterparties.py). What those hashes were is read at judging time
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

from models.features.counterparties import CounterpartySample, comparable_bound, counterparty_hash_of

PERSON = "person"
INSTITUTION = "institution"
INSTITUTION_ROLES = frozenset({"customer_custody", "payment_reserve", "own_operating", "related_party"})
PERSON_ROLES = frozenset({"investor", "borrower"})
# Both shares when the day's sample holds no counterparty of a known kind: neither kind seen.
NEUTRAL_SHARE = 0.0


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


def kind_shares(
    samples: Iterable[CounterpartySample], kinds: Mapping[int, str] | None
) -> tuple[float, float]:
    """(person share, institution share) of the day's counterparties of a known kind, payers
    and payees together, each counterparty once.

    Judged where every sample is complete (below the smallest largest hash of a truncated one,
    as new counterparties are): there the hashes are a uniform draw of the day's counterparties,
    so beyond the sample size the shares are estimates. Unregistered counterparties are left
    out of both numerator and denominator; a day with none of a known kind gives NEUTRAL_SHARE
    for both (no evidence either way)."""
    if not kinds:
        return NEUTRAL_SHARE, NEUTRAL_SHARE
    samples = list(samples)
    bound = comparable_bound(samples)
    judged = {h for sample in samples for h in sample.hashes if bound is None or h <= bound}
    found = [kind for h in judged if (kind := kinds.get(h)) is not None]
    if not found:
        return NEUTRAL_SHARE, NEUTRAL_SHARE
    persons = sum(1 for kind in found if kind == PERSON)
    return persons / len(found), (len(found) - persons) / len(found)
