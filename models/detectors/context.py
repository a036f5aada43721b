"""What a detector may look at besides the records: reference data and thresholds.

A detector never reads a topic, a table or a socket (DESIGN.md); the worker hands it a
``DetectContext`` whose ``references`` answer from memory (the worker's reference view) and whose
``thresholds`` are the versioned configuration (models/thresholds.toml). ``StaticReferences`` is
the same thing backed by plain dicts, for tests and for ``fundwatch eval``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from models.features.kinds import kind_map
from models.thresholds import Thresholds

if TYPE_CHECKING:
    from models.anomaly_serving import AnomalyModels

CUSTODY_ROLES = frozenset({"customer_custody", "payment_reserve"})


@runtime_checkable
class References(Protocol):
    """Reference look-ups a detector needs; every answer is a plain dict (or None when unknown)."""

    def account(self, account_id: str) -> dict[str, Any] | None:
        """account_id, bank_code, institution_id, role, holder_name, product_id[, holder_type]."""
        ...

    def institution(self, institution_id: str) -> dict[str, Any] | None:
        """institution_id, name, type, region, ..."""
        ...

    def related_accounts(self, institution_id: str) -> frozenset[str]:
        """Every account listed in the ``accounts`` of the institution's related parties."""
        ...

    def related_institution(self, account_id: str) -> str | None:
        """The institution one of whose related parties lists this account (the smallest id when
        several do), or None."""
        ...

    def banks_of(self, institution_id: str) -> frozenset[str]:
        """The bank codes of the accounts registered to the institution: the banks whose records
        its institution-level figures wait for."""
        ...

    def product(self, product_id: str) -> dict[str, Any] | None:
        """product_id, institution_id, declared_annual_yield, term_days, underlying_project_rate,
        underlying_term_days, investor_cap, sale_start, sale_end (CONTRACT.md §3)."""
        ...

    def products_of(self, institution_id: str) -> Sequence[dict[str, Any]]:
        """The institution's products, ordered by product_id."""
        ...

    def products_of_type(self, institution_type: str) -> Sequence[dict[str, Any]]:
        """Every product of every institution of that type (the peer group), ordered by product_id.
        The same object while the group is unchanged, or a new one each call: never a changed
        one (excess_return keeps figures derived from it by its identity)."""
        ...

    def counterparty_kinds(self) -> Mapping[int, str]:
        """Counterparty hash -> kind of every registered account (models/features/kinds.py),
        kept with the reference data and changed with it: read, never changed, by the caller."""
        ...


def _by_id(items: Mapping[str, dict[str, Any]] | Iterable[dict[str, Any]], key: str) -> dict[str, dict]:
    if isinstance(items, Mapping):
        return {str(k): dict(v) for k, v in items.items()}
    return {str(item[key]): dict(item) for item in items}


class StaticReferences:
    """References held in dicts: ``accounts`` and ``institutions`` keyed by id (a list of items is
    accepted too), ``related_parties`` a list of related-party items."""

    def __init__(
        self,
        accounts: Mapping[str, dict[str, Any]] | Iterable[dict[str, Any]] = (),
        institutions: Mapping[str, dict[str, Any]] | Iterable[dict[str, Any]] = (),
        related_parties: Iterable[dict[str, Any]] = (),
        products: Mapping[str, dict[str, Any]] | Iterable[dict[str, Any]] = (),
    ) -> None:
        self._accounts = _by_id(accounts, "account_id")
        self._institutions = _by_id(institutions, "institution_id")
        self._products = _by_id(products, "product_id")
        related: dict[str, set[str]] = {}
        for party in related_parties:
            related.setdefault(str(party["institution_id"]), set()).update(party.get("accounts") or ())
        self._related = {iid: frozenset(accounts) for iid, accounts in related.items()}
        self._listed_by = listed_by(self._related)
        self._banks = banks_by_institution(self._accounts.values())
        self._kinds: dict[int, str] | None = None  # built at the first question
        # institution id -> its products ordered by id: the dicts above are this object's own
        # copies and never change, so the index is built at the first question, not per call
        self._products_by_institution: dict[Any, list[dict[str, Any]]] | None = None
        # institution type -> its products: the same tuple for every question, as the worker's
        # reference view (streams/reference.py) hands out, so that figures kept per group
        # (peer_yields.peers_of) are made once, not once per message
        self._products_by_type: dict[str, tuple[dict[str, Any], ...]] = {}

    def counterparty_kinds(self) -> Mapping[int, str]:
        if self._kinds is None:
            self._kinds = kind_map(self._accounts.values())
        return self._kinds

    def account(self, account_id: str) -> dict[str, Any] | None:
        return self._accounts.get(account_id)

    def banks_of(self, institution_id: str) -> frozenset[str]:
        return self._banks.get(institution_id, frozenset())

    def institution(self, institution_id: str) -> dict[str, Any] | None:
        return self._institutions.get(institution_id)

    def related_accounts(self, institution_id: str) -> frozenset[str]:
        return self._related.get(institution_id, frozenset())

    def related_institution(self, account_id: str) -> str | None:
        return self._listed_by.get(account_id)

    def product(self, product_id: str) -> dict[str, Any] | None:
        return self._products.get(product_id)

    def products_of(self, institution_id: str) -> list[dict[str, Any]]:
        index = self._products_by_institution
        if index is None:
            index = self._products_by_institution = {}
            for pid in sorted(self._products):
                product = self._products[pid]
                index.setdefault(product.get("institution_id"), []).append(product)
        return list(index.get(institution_id, ()))  # a new list, as products_of makes

    def products_of_type(self, institution_type: str) -> tuple[dict[str, Any], ...]:
        found = self._products_by_type.get(institution_type)
        if found is None:
            found = self._products_by_type[institution_type] = tuple(
                products_of_type(self._products, self._institutions, institution_type)
            )
        return found


def banks_by_institution(accounts: Iterable[dict[str, Any]]) -> dict[str, frozenset[str]]:
    """Institution id -> the bank codes of its registered accounts."""
    index: dict[str, set[str]] = {}
    for account in accounts:
        institution_id, bank = account.get("institution_id"), account.get("bank_code")
        if institution_id and bank:
            index.setdefault(str(institution_id), set()).add(str(bank))
    return {iid: frozenset(banks) for iid, banks in index.items()}


def listed_by(related: Mapping[str, frozenset[str]]) -> dict[str, str]:
    """Account -> the smallest institution id whose related parties list it."""
    index: dict[str, str] = {}
    for institution_id in sorted(related, reverse=True):
        for account_id in related[institution_id]:
            index[account_id] = institution_id
    return index


def products_of(products: Mapping[str, dict[str, Any]], institution_id: str) -> list[dict[str, Any]]:
    return [
        products[pid] for pid in sorted(products) if products[pid].get("institution_id") == institution_id
    ]


def products_of_type(
    products: Mapping[str, dict[str, Any]], institutions: Mapping[str, dict[str, Any]], institution_type: str
) -> list[dict[str, Any]]:
    def type_of(product: dict[str, Any]) -> str | None:
        institution = institutions.get(str(product.get("institution_id")))
        return _text(institution.get("type")) if institution else None

    return [products[pid] for pid in sorted(products) if type_of(products[pid]) == institution_type]


class OverlaidReferences:
    """References with some products replaced by newer copies: a product review carries the
    items just upserted, which the worker's view may not have received yet."""

    def __init__(self, base: References, products: Iterable[dict[str, Any]]) -> None:
        self._base = base
        self._products = {str(p["product_id"]): dict(p) for p in products}

    def account(self, account_id: str) -> dict[str, Any] | None:
        return self._base.account(account_id)

    def institution(self, institution_id: str) -> dict[str, Any] | None:
        return self._base.institution(institution_id)

    def related_accounts(self, institution_id: str) -> frozenset[str]:
        return self._base.related_accounts(institution_id)

    def related_institution(self, account_id: str) -> str | None:
        return self._base.related_institution(account_id)

    def banks_of(self, institution_id: str) -> frozenset[str]:
        return self._base.banks_of(institution_id)

    def counterparty_kinds(self) -> Mapping[int, str]:
        return self._base.counterparty_kinds()

    def product(self, product_id: str) -> dict[str, Any] | None:
        return self._products.get(product_id) or self._base.product(product_id)

    def _overlay(
        self, items: Sequence[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        merged = {str(p["product_id"]): p for p in items}
        for pid, product in self._products.items():
            if keep(product):
                merged[pid] = product
            else:
                merged.pop(pid, None)
        return [merged[pid] for pid in sorted(merged)]

    def products_of(self, institution_id: str) -> list[dict[str, Any]]:
        return self._overlay(
            self._base.products_of(institution_id), lambda p: p.get("institution_id") == institution_id
        )

    def products_of_type(self, institution_type: str) -> list[dict[str, Any]]:
        def same_type(product: dict[str, Any]) -> bool:
            institution = self._base.institution(str(product.get("institution_id")))
            return institution is not None and _text(institution.get("type")) == institution_type

        return self._overlay(self._base.products_of_type(institution_type), same_type)


# -- the context ----------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """An enum member or a string as its plain string value."""
    if value is None or type(value) is str:  # reference data from JSON: a string already
        return value
    return str(getattr(value, "value", value))


# Thresholds are fixed for the life of a process and each detector's defaults are a constant, so
# the merge of the two is made once per (typology, institution type), not once per record.
# Each entry holds its Thresholds and defaults, so neither is collected and its id reused while
# the entry lives.
_MERGED: dict[tuple[int, str, str | None, int], tuple[Thresholds, Any, dict[str, Any]]] = {}


def _merged(
    thresholds: Thresholds, typology: str, institution_type: str | None, defaults: Mapping[str, Any] | None
) -> dict[str, Any]:
    key = (id(thresholds), typology, institution_type, id(defaults))
    found = _MERGED.get(key)
    if found is None:
        if len(_MERGED) > 4096:  # many Thresholds made over a process's life (tests): start over
            _MERGED.clear()
        found = _MERGED[key] = (
            thresholds,
            defaults,
            {**(defaults or {}), **thresholds.get(typology, institution_type)},
        )
    return found[2]


@dataclass(frozen=True)
class DetectContext:
    references: References
    thresholds: Thresholds
    # The latest event time a record may plausibly carry now (the worker's clock plus the
    # gateway's allowance for clocks ahead): watermarks never pass it. None when replaying
    # history with no clock to trust (unit tests, evaluation over fixed data).
    event_time_ceiling: int | None = None
    # The learned `anomaly` model (models/anomaly_serving.py), or None when none is loaded: the
    # anomaly detector then keeps its features and raises nothing. The worker swaps in a new
    # artefact by making its next context with it.
    anomaly_model: AnomalyModels | None = None
    # account id -> (role, institution id) read so far (see _known); new with every context
    _accounts_seen: dict[str, tuple[str | None, str | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def account(self, account_id: str | None) -> dict[str, Any] | None:
        return self.references.account(account_id) if account_id else None

    def role(self, account_id: str | None) -> str | None:
        known = self._known(account_id)
        return known[0] if known else None

    def institution_id(self, account_id: str | None) -> str | None:
        known = self._known(account_id)
        return known[1] if known else None

    def _known(self, account_id: str | None) -> tuple[str | None, str | None] | None:
        """An account's role and institution, asked several times per record by several
        detectors: read from the reference data once per context. The worker makes a context per
        take (streams/records.py), so a change to an account applies from the next take; an
        account not found is asked again every time, so one registered meanwhile is seen."""
        if not account_id:
            return None
        known = self._accounts_seen.get(account_id)
        if known is None:
            account = self.references.account(account_id)
            if account is None:
                return None
            known = self._accounts_seen[account_id] = (
                _text(account.get("role")),
                _text(account.get("institution_id")),
            )
        return known

    def reporting_institution(self, account_id: str | None) -> str | None:
        """The institution a report on this account is filed under: its own, else the one whose
        related party lists it (a controller's personal account belongs to no institution but is
        watched because of one)."""
        return self.institution_id(account_id) or (
            self.references.related_institution(account_id) if account_id else None
        )

    def institution(self, account_id: str | None) -> dict[str, Any] | None:
        """The institution an account belongs to."""
        institution_id = self.institution_id(account_id)
        return self.references.institution(institution_id) if institution_id else None

    def institution_type(self, account_id: str | None) -> str | None:
        institution = self.institution(account_id)
        return _text(institution.get("type")) if institution else None

    def counterparty_kinds(self) -> Mapping[int, str]:
        return self.references.counterparty_kinds()

    def region(self, account_id: str | None) -> str:
        institution = self.institution(account_id)
        return str(institution.get("region") or "") if institution else ""

    def config(
        self, typology: str, account_id: str | None, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One typology's thresholds for the account's institution type, over a detector's
        own defaults for keys the configuration does not carry. Shared between calls: read it,
        never change it."""
        return _merged(self.thresholds, typology, self.institution_type(account_id), defaults)

    def institution_config(
        self, typology: str, institution_id: str | None, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One typology's thresholds for the type of the institution itself (product- and
        institution-level detectors), over a detector's own defaults."""
        institution = self.references.institution(institution_id) if institution_id else None
        institution_type = _text(institution.get("type")) if institution else None
        return _merged(self.thresholds, typology, institution_type, defaults)

    def is_own(self, institution_id: str | None, account_id: str | None) -> bool:
        """An own_operating account of that institution."""
        if not institution_id or not account_id:
            return False
        known = self._known(account_id)  # (role, institution id) as role() reads them
        return known is not None and known[0] == "own_operating" and known[1] == institution_id

    def is_related(self, institution_id: str | None, account_id: str | None) -> bool:
        """An account of one of the institution's related parties: role related_party of that
        institution, or listed in one of its related parties' ``accounts``."""
        if not institution_id or not account_id:
            return False
        if account_id in self.references.related_accounts(institution_id):
            return True
        known = self._known(account_id)
        return known is not None and known[0] == "related_party" and known[1] == institution_id

    def destination(self, institution_id: str | None, account_id: str | None) -> str:
        """Where money went, seen from an institution: "own" (its own operating account), "related"
        (a related party's account) or "other". Own wins when an account is both, so that one
        movement is never both misappropriation (fees) and self-financing."""
        if self.is_own(institution_id, account_id):
            return "own"
        if self.is_related(institution_id, account_id):
            return "related"
        return "other"
