"""Reference data (CONTRACT.md §3): institutions, accounts, related parties, products.

Reference data is what turns an account number into "the customer-custody account of a P2P
platform in 220102"; every worker holds all of it so detectors look it up without I/O.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import msgspec

from schemas.fields import Count, Id, PositiveDays, Rate, Region, Text, Time, Uscc, parse_time
from schemas.records import FieldError

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="a non-empty name")]


class InstitutionType(str, Enum):
    p2p_lending = "p2p_lending"
    equity_crowdfunding = "equity_crowdfunding"
    internet_insurance = "internet_insurance"
    asset_management = "asset_management"
    payment = "payment"
    real_estate = "real_estate"
    other = "other"


class AccountRole(str, Enum):
    customer_custody = "customer_custody"
    payment_reserve = "payment_reserve"
    own_operating = "own_operating"
    related_party = "related_party"
    investor = "investor"
    borrower = "borrower"
    other = "other"


class Relation(str, Enum):
    shareholder = "shareholder"
    actual_controller = "actual_controller"
    executive = "executive"
    affiliate = "affiliate"


class Institution(msgspec.Struct, forbid_unknown_fields=True):
    institution_id: Id
    name: Name
    uscc: Uscc
    type: InstitutionType
    region: Region
    business_scope: Text = ""
    licences: list[Annotated[str, msgspec.Meta(max_length=128)]] = []
    status: Annotated[str, msgspec.Meta(max_length=64)] = "active"


class Account(msgspec.Struct, forbid_unknown_fields=True):
    account_id: Id
    bank_code: Id
    role: AccountRole
    holder_name: Annotated[str, msgspec.Meta(max_length=256)]
    institution_id: Id | None = None
    product_id: Id | None = None


class RelatedParty(msgspec.Struct, forbid_unknown_fields=True):
    party_id: Id
    institution_id: Id
    name: Name
    relation: Relation
    accounts: list[Id] = []


class Product(msgspec.Struct, forbid_unknown_fields=True):
    product_id: Id
    institution_id: Id
    name: Name
    declared_annual_yield: Rate
    term_days: PositiveDays
    underlying_project_rate: Rate | None = None
    underlying_term_days: PositiveDays | None = None
    investor_cap: Count | None = None
    sale_start: Time | None = None
    sale_end: Time | None = None

    def __post_init__(self) -> None:
        for field in ("sale_start", "sale_end"):
            value = getattr(self, field)
            if value is not None:
                try:
                    parse_time(value)
                except ValueError:
                    raise FieldError(field, "a real calendar date and time") from None
        if self.sale_start is not None and self.sale_end is not None:
            if parse_time(self.sale_end) < parse_time(self.sale_start):
                raise FieldError("sale_end", "at or after sale_start")


class ReferenceKind(msgspec.Struct, frozen=True):
    """How one kind of reference data is named on the API, on Kafka and in ClickHouse."""

    path: str
    type: type
    key: str
    topic: str
    table: str


REFERENCE_KINDS: dict[str, ReferenceKind] = {
    kind.path: kind
    for kind in (
        ReferenceKind(
            "institutions", Institution, "institution_id", "fw.ref.institutions", "ref_institutions"
        ),
        ReferenceKind("accounts", Account, "account_id", "fw.ref.accounts", "ref_accounts"),
        ReferenceKind(
            "related-parties", RelatedParty, "party_id", "fw.ref.related_parties", "ref_related_parties"
        ),
        ReferenceKind("products", Product, "product_id", "fw.ref.products", "ref_products"),
    )
}
