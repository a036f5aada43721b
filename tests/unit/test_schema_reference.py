"""schemas/reference.py through schemas.validation.convert: reference data rules."""

from __future__ import annotations

import pytest

from schemas.fields import RATE_RULE, REGION_RULE, USCC_RULE
from schemas.reference import (
    REFERENCE_KINDS,
    Account,
    AccountRole,
    Institution,
    InstitutionType,
    Product,
    RelatedParty,
    Relation,
)
from schemas.validation import ValidationFailure, convert

DROP = object()

INSTITUTION = {
    "institution_id": "I-1",
    "name": "长春某网络借贷信息中介有限公司",
    "uscc": "91220101MA0Y5XXX1K",
    "type": "p2p_lending",
    "region": "220102",
}
ACCOUNT = {
    "account_id": "6222020000000001",
    "bank_code": "B001",
    "role": "customer_custody",
    "holder_name": "某平台存管户",
}
PARTY = {"party_id": "RP-1", "institution_id": "I-1", "name": "张三", "relation": "actual_controller"}
PRODUCT = {
    "product_id": "P-1",
    "institution_id": "I-1",
    "name": "月月盈",
    "declared_annual_yield": "0.085",
    "term_days": 30,
}


def _with(base: dict, **changes: object) -> dict:
    data = dict(base)
    for key, value in changes.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def rejected(base: dict, type_: type, **changes: object) -> ValidationFailure:
    with pytest.raises(ValidationFailure) as info:
        convert(_with(base, **changes), type_)
    return info.value


# --- institution ---------------------------------------------------------------------------------


def test_institution_valid_with_defaults():
    item = convert(INSTITUTION, Institution)
    assert item.type is InstitutionType.p2p_lending
    assert item.region == "220102"
    assert item.licences == [] and item.status == "active" and item.business_scope == ""


@pytest.mark.parametrize(
    "uscc", ["91220101MA0Y5XXX1", "91220101MA0Y5XXX1KK", "91220101ma0y5xxx1k", "91220101MA0Y5XX-1K", ""]
)
def test_institution_uscc_must_be_18_digits_or_capitals(uscc):
    failure = rejected(INSTITUTION, Institution, uscc=uscc)
    assert failure.field == "uscc"
    assert USCC_RULE in str(failure)
    assert "`uscc`" in str(failure)


def test_institution_uscc_all_digits_accepted():
    assert convert(_with(INSTITUTION, uscc="9" * 18), Institution).uscc == "9" * 18


@pytest.mark.parametrize("region", ["22010", "2201020", "22010A", 220102])
def test_institution_region_must_be_six_digits(region):
    failure = rejected(INSTITUTION, Institution, region=region)
    assert failure.field == "region"


def test_institution_region_rule_in_words():
    assert REGION_RULE in str(rejected(INSTITUTION, Institution, region="22"))


@pytest.mark.parametrize("type_", [t.value for t in InstitutionType])
def test_institution_type_enum_accepted(type_):
    assert convert(_with(INSTITUTION, type=type_), Institution).type.value == type_


def test_institution_type_enum_is_the_contract_list():
    assert {t.value for t in InstitutionType} == {
        "p2p_lending", "equity_crowdfunding", "internet_insurance", "asset_management", "payment", "real_estate", "other",
    }  # fmt: skip


def test_institution_type_not_in_enum_rejected():
    failure = rejected(INSTITUTION, Institution, type="bank")
    assert failure.field == "type"
    assert "allowed values" in failure.message


@pytest.mark.parametrize("field", ["institution_id", "name", "uscc", "type", "region"])
def test_institution_required_fields(field):
    failure = rejected(INSTITUTION, Institution, **{field: DROP})
    assert failure.field == field
    assert failure.message == "is required"


def test_institution_empty_name_rejected():
    assert rejected(INSTITUTION, Institution, name="").field == "name"


def test_institution_unknown_field_rejected():
    assert rejected(INSTITUTION, Institution, website="x").field == "website"


def test_institution_licences_must_be_a_list():
    assert rejected(INSTITUTION, Institution, licences="ICP").field == "licences"


# --- account -------------------------------------------------------------------------------------


def test_account_valid_with_null_institution():
    item = convert(_with(ACCOUNT, institution_id=None), Account)
    assert item.institution_id is None
    assert item.role is AccountRole.customer_custody


def test_account_institution_may_be_absent():
    assert convert(ACCOUNT, Account).institution_id is None


def test_account_institution_given():
    assert convert(_with(ACCOUNT, institution_id="I-1"), Account).institution_id == "I-1"


@pytest.mark.parametrize("role", [r.value for r in AccountRole])
def test_account_role_enum_accepted(role):
    assert convert(_with(ACCOUNT, role=role), Account).role.value == role


def test_account_role_enum_is_the_contract_list():
    assert {r.value for r in AccountRole} == {
        "customer_custody", "payment_reserve", "own_operating", "related_party", "investor", "borrower", "other",
    }  # fmt: skip


def test_account_role_not_in_enum_rejected():
    failure = rejected(ACCOUNT, Account, role="custody")
    assert failure.field == "role"
    assert "`role`" in str(failure)


@pytest.mark.parametrize("field", ["account_id", "bank_code", "role", "holder_name"])
def test_account_required_fields(field):
    assert rejected(ACCOUNT, Account, **{field: DROP}).field == field


def test_account_empty_institution_id_rejected():
    assert rejected(ACCOUNT, Account, institution_id="").field == "institution_id"


# --- related party -------------------------------------------------------------------------------


def test_related_party_valid():
    item = convert(_with(PARTY, accounts=["A1", "A2"]), RelatedParty)
    assert item.relation is Relation.actual_controller
    assert item.accounts == ["A1", "A2"]


def test_related_party_accounts_default_empty():
    assert convert(PARTY, RelatedParty).accounts == []


@pytest.mark.parametrize("relation", ["shareholder", "actual_controller", "executive", "affiliate"])
def test_related_party_relation_accepted(relation):
    assert convert(_with(PARTY, relation=relation), RelatedParty).relation.value == relation


def test_related_party_relation_not_in_enum_rejected():
    assert rejected(PARTY, RelatedParty, relation="friend").field == "relation"


def test_related_party_empty_account_id_in_list_rejected():
    failure = rejected(PARTY, RelatedParty, accounts=["A1", ""])
    assert failure.field == "accounts[1]"


@pytest.mark.parametrize("field", ["party_id", "institution_id", "name", "relation"])
def test_related_party_required_fields(field):
    assert rejected(PARTY, RelatedParty, **{field: DROP}).field == field


# --- product -------------------------------------------------------------------------------------


def test_product_valid_full():
    item = convert(
        _with(
            PRODUCT,
            underlying_project_rate="0.12",
            underlying_term_days=365,
            investor_cap=200,
            sale_start="2026-11-01T09:00:00+08:00",
            sale_end="2026-11-30T17:00:00+08:00",
        ),
        Product,
    )
    assert item.declared_annual_yield == "0.085"
    assert item.investor_cap == 200
    assert item.underlying_term_days == 365


@pytest.mark.parametrize("rate", ["0", "0.085", "0.1", "1", "0.123456", "24"])
def test_product_rate_decimal_fraction_accepted(rate):
    assert convert(_with(PRODUCT, declared_annual_yield=rate), Product).declared_annual_yield == rate


@pytest.mark.parametrize("rate", ["8.5%", "-0.1", "0.1234567", ".085", "00.1", "1e-2", "1000"])
def test_product_rate_malformed_rejected_with_rule(rate):
    failure = rejected(PRODUCT, Product, declared_annual_yield=rate)
    assert failure.field == "declared_annual_yield"
    assert RATE_RULE in str(failure)


def test_product_rate_as_number_rejected():
    failure = rejected(PRODUCT, Product, declared_annual_yield=0.085)
    assert failure.field == "declared_annual_yield"
    assert "a string" in failure.message


def test_product_underlying_rate_checked_too():
    assert rejected(PRODUCT, Product, underlying_project_rate="12%").field == "underlying_project_rate"


@pytest.mark.parametrize("days", [0, -1])
def test_product_term_days_at_least_one(days):
    failure = rejected(PRODUCT, Product, term_days=days)
    assert failure.field == "term_days"
    assert failure.message == "must be at least 1"


def test_product_term_days_one_accepted():
    assert convert(_with(PRODUCT, term_days=1), Product).term_days == 1


def test_product_term_days_upper_bound():
    assert rejected(PRODUCT, Product, term_days=36501).message == "must be at most 36500"


def test_product_term_days_bool_rejected():
    assert rejected(PRODUCT, Product, term_days=True).field == "term_days"


def test_product_underlying_term_days_at_least_one():
    assert rejected(PRODUCT, Product, underlying_term_days=0).field == "underlying_term_days"


@pytest.mark.parametrize("cap", [0, -200])
def test_product_investor_cap_at_least_one(cap):
    failure = rejected(PRODUCT, Product, investor_cap=cap)
    assert failure.field == "investor_cap"
    assert "at least 1" in failure.message


def test_product_investor_cap_one_accepted():
    assert convert(_with(PRODUCT, investor_cap=1), Product).investor_cap == 1


def test_product_sale_end_before_sale_start_rejected_naming_sale_end():
    failure = rejected(
        PRODUCT, Product, sale_start="2026-11-30T09:00:00+08:00", sale_end="2026-11-01T17:00:00+08:00"
    )
    assert failure.field == "sale_end"
    assert "`sale_end`" in str(failure)
    assert "sale_start" in failure.message


def test_product_sale_end_equal_to_start_accepted():
    item = convert(
        _with(PRODUCT, sale_start="2026-11-01T09:00:00+08:00", sale_end="2026-11-01T01:00:00Z"), Product
    )
    assert item.sale_end == "2026-11-01T01:00:00Z"


def test_product_sale_window_compared_as_instants_not_text():
    # textually "2026-11-01T08:00:00Z" < "2026-11-01T09:00:00+08:00" but it is 7 hours later
    item = convert(
        _with(PRODUCT, sale_start="2026-11-01T09:00:00+08:00", sale_end="2026-11-01T08:00:00Z"), Product
    )
    assert item.sale_end == "2026-11-01T08:00:00Z"


def test_product_sale_end_one_second_before_start_in_other_offset_rejected():
    failure = rejected(
        PRODUCT, Product, sale_start="2026-11-01T09:00:00+08:00", sale_end="2026-11-01T00:59:59Z"
    )
    assert failure.field == "sale_end"


def test_product_sale_dates_impossible_rejected_when_both_given():
    failure = rejected(
        PRODUCT, Product, sale_start="2026-02-30T09:00:00+08:00", sale_end="2026-03-30T09:00:00+08:00"
    )
    assert failure.field == "sale_start"


def test_product_sale_start_without_offset_rejected():
    assert rejected(PRODUCT, Product, sale_start="2026-11-01T09:00:00").field == "sale_start"


def test_product_lone_impossible_sale_start_rejected():
    failure = rejected(PRODUCT, Product, sale_start="2026-02-30T09:00:00+08:00")
    assert failure.field == "sale_start"


def test_product_lone_impossible_sale_end_rejected():
    failure = rejected(PRODUCT, Product, sale_end="2026-02-30T09:00:00+08:00")
    assert failure.field == "sale_end"


@pytest.mark.parametrize(
    "field", ["product_id", "institution_id", "name", "declared_annual_yield", "term_days"]
)
def test_product_required_fields(field):
    assert rejected(PRODUCT, Product, **{field: DROP}).field == field


def test_convert_list_prefixes_index():
    with pytest.raises(ValidationFailure) as info:
        convert([PRODUCT, _with(PRODUCT, term_days=0)], list[Product])
    assert info.value.field == "[1].term_days"


def test_convert_with_prefix():
    with pytest.raises(ValidationFailure) as info:
        convert(_with(PRODUCT, term_days=0), Product, prefix="[4]")
    assert info.value.field == "[4].term_days"


# --- the kinds by API path -----------------------------------------------------------------------


def test_reference_kinds_has_the_four_paths_with_keys():
    assert {path: kind.key for path, kind in REFERENCE_KINDS.items()} == {
        "institutions": "institution_id",
        "accounts": "account_id",
        "related-parties": "party_id",
        "products": "product_id",
    }


def test_reference_kinds_types():
    assert REFERENCE_KINDS["institutions"].type is Institution
    assert REFERENCE_KINDS["accounts"].type is Account
    assert REFERENCE_KINDS["related-parties"].type is RelatedParty
    assert REFERENCE_KINDS["products"].type is Product


def test_reference_kind_path_matches_its_dict_key():
    for path, kind in REFERENCE_KINDS.items():
        assert kind.path == path


def test_reference_kinds_key_field_is_a_field_of_the_type():
    for kind in REFERENCE_KINDS.values():
        assert kind.key in kind.type.__struct_fields__


def test_reference_kinds_topics_and_tables_distinct():
    kinds = list(REFERENCE_KINDS.values())
    assert len({k.topic for k in kinds}) == 4
    assert len({k.table for k in kinds}) == 4
