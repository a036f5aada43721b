"""models/detectors/context.py and holders.py: references, natural persons, the detector context."""

from __future__ import annotations

import pytest

from models.detectors.context import (
    CUSTODY_ROLES,
    DetectContext,
    References,
    StaticReferences,
)
from models.detectors.holders import is_natural_person
from models.thresholds import Thresholds
from schemas.reference import AccountRole
from tests.unit.test_detectors_common import (
    BORROWER,
    CUSTODY,
    EXTERNAL,
    INVESTOR,
    LISTED,
    OWN,
    OWN_P2,
    OWN_PAY,
    RELATED,
    RELATED_P2,
    RESERVE,
    TEST_THRESHOLDS,
    references,
    world,
)


def test_static_references_look_up_by_id():
    refs = references()
    assert isinstance(refs, References)
    assert refs.account(CUSTODY)["role"] == "customer_custody"
    assert refs.account("nope") is None
    assert refs.institution("PAY")["type"] == "payment"
    assert refs.institution("nope") is None


def test_static_references_take_lists_or_dicts():
    account = {"account_id": "A1", "role": "own_operating", "holder_name": "x", "institution_id": "I"}
    by_list = StaticReferences([account], [{"institution_id": "I", "type": "other"}], [])
    by_dict = StaticReferences({"A1": account}, {"I": {"institution_id": "I", "type": "other"}})
    assert by_list.account("A1") == by_dict.account("A1") == account
    assert by_list.institution("I") == by_dict.institution("I")


def test_related_accounts_are_the_union_of_the_parties_lists():
    refs = StaticReferences(
        related_parties=[
            {"party_id": "a", "institution_id": "I", "accounts": ["x", "y"]},
            {"party_id": "b", "institution_id": "I", "accounts": ["y", "z"]},
            {"party_id": "c", "institution_id": "J", "accounts": ["w"]},
            {"party_id": "d", "institution_id": "J"},
        ]
    )
    assert refs.related_accounts("I") == frozenset({"x", "y", "z"})
    assert refs.related_accounts("J") == frozenset({"w"})
    assert refs.related_accounts("K") == frozenset()


@pytest.mark.parametrize(
    "name",
    ["长春瑞丰网络科技有限公司", "吉林某某投资合伙企业（有限合伙）", "长春市数据服务中心", "中国工商银行长春分行",
     "吉林某某股权投资基金", "吉林某某集团", "某某会计师事务所", "长春市互联网金融协会", "榆树市某某种植专业合作社",
     "长春市宽城区某某商店", "某某面粉厂", "ACME Co., Ltd.", "Bank of Changchun", "Jilin Growth Fund LP"],
)  # fmt: skip
def test_organisations_by_name(name):
    assert is_natural_person({"holder_name": name}) is False


@pytest.mark.parametrize("name", ["王建国", "李娜", "欧阳秀英", "张**", "阿不都·热合曼", "John Smith"])
def test_persons_by_name(name):
    assert is_natural_person({"holder_name": name}) is True


@pytest.mark.parametrize("name", ["", "   ", "吉林省长春市朝阳区人民大街", "X"])
def test_unknown_when_the_name_says_nothing(name):
    assert is_natural_person({"holder_name": name}) is None


def test_holder_type_wins_over_the_name():
    assert is_natural_person({"holder_name": "某某有限公司", "holder_type": "person"}) is True
    assert is_natural_person({"holder_name": "王建国", "holder_type": "organization"}) is False
    assert is_natural_person({"holder_name": "王建国", "holder_type": "weird"}) is True
    assert is_natural_person(None) is None


def test_context_account_helpers():
    ctx = world()
    assert ctx.role(CUSTODY) == "customer_custody"
    assert ctx.institution_id(CUSTODY) == "P1"
    assert ctx.institution(CUSTODY)["type"] == "p2p_lending"
    assert ctx.institution_type(RESERVE) == "payment"
    assert ctx.region(RESERVE) == "220104"
    assert (
        ctx.role(EXTERNAL) is None and ctx.institution_type(EXTERNAL) is None and ctx.region(EXTERNAL) == ""
    )
    assert ctx.account(None) is None


def test_enum_roles_are_read_as_strings():
    refs = StaticReferences(
        {
            "A": {
                "account_id": "A",
                "role": AccountRole.payment_reserve,
                "holder_name": "x",
                "institution_id": "I",
            }
        }
    )
    ctx = DetectContext(refs, TEST_THRESHOLDS)
    assert ctx.role("A") == "payment_reserve" and ctx.role("A") in CUSTODY_ROLES


def test_config_is_per_institution_type():
    ctx = world()
    assert ctx.config("misappropriation", CUSTODY)["fee_share_max"] == "0.05"
    assert ctx.config("misappropriation", RESERVE)["fee_share_max"] == "0.02"
    assert ctx.config("misappropriation", EXTERNAL)["fee_share_max"] == "0.05"
    assert ctx.config("nothing", CUSTODY) == {}
    empty = DetectContext(references(), Thresholds("v", {}, {}))
    assert empty.config("misappropriation", CUSTODY) == {}


def test_own_related_and_destination():
    ctx = world()
    assert ctx.is_own("P1", OWN) and not ctx.is_own("P1", OWN_P2) and not ctx.is_own("P1", OWN_PAY)
    assert ctx.is_related("P1", RELATED)  # role related_party of P1 (and listed)
    assert ctx.is_related("P1", LISTED)  # only listed in a related party's accounts
    assert not ctx.is_related("P1", RELATED_P2)  # another institution's related party
    assert not ctx.is_related("P1", BORROWER) and not ctx.is_related(None, RELATED)
    assert ctx.destination("P1", OWN) == "own"
    assert ctx.destination("P1", RELATED) == "related"
    assert ctx.destination("P1", INVESTOR) == "other"
    assert ctx.destination("P1", EXTERNAL) == "other"


def test_own_wins_when_an_account_is_own_and_listed():
    refs = StaticReferences(
        {"O": {"account_id": "O", "role": "own_operating", "holder_name": "x", "institution_id": "I"}},
        {"I": {"institution_id": "I", "type": "p2p_lending"}},
        [{"party_id": "p", "institution_id": "I", "accounts": ["O"]}],
    )
    assert DetectContext(refs, TEST_THRESHOLDS).destination("I", "O") == "own"


def test_a_report_on_an_account_listed_by_a_related_party_is_filed_under_that_institution():
    from models.detectors.context import DetectContext, StaticReferences
    from models.thresholds import load_thresholds

    refs = StaticReferences(
        accounts=[{"account_id": "CTRL", "bank_code": "B1", "role": "other", "holder_name": "张三"}],
        institutions=[{"institution_id": "P9", "type": "p2p_lending", "region": "220102"}],
        related_parties=[{"party_id": "RP", "institution_id": "P9", "accounts": ["CTRL", "UNREG"]}],
    )
    ctx = DetectContext(refs, load_thresholds(env={}))
    assert ctx.institution_id("CTRL") is None
    assert ctx.reporting_institution("CTRL") == "P9"
    assert ctx.reporting_institution("UNREG") == "P9"  # not in the reference accounts at all
    assert ctx.reporting_institution("NOBODY") is None


def test_products_of_a_type_are_one_tuple_ordered_by_id_for_every_question():
    refs = StaticReferences(
        institutions=[
            {"institution_id": "P1", "type": "p2p_lending"},
            {"institution_id": "P2", "type": "p2p_lending"},
            {"institution_id": "C1", "type": "crowdfunding"},
        ],
        products=[
            {"product_id": "b", "institution_id": "P2"},
            {"product_id": "a", "institution_id": "P1"},
            {"product_id": "c", "institution_id": "C1"},
            {"product_id": "d", "institution_id": "nobody"},
        ],
    )
    lending = refs.products_of_type("p2p_lending")
    assert [p["product_id"] for p in lending] == ["a", "b"]
    # the same object again, so figures kept per group (peer_yields.peers_of) are made once
    assert refs.products_of_type("p2p_lending") is lending
    assert [p["product_id"] for p in refs.products_of_type("crowdfunding")] == ["c"]
    assert refs.products_of_type("payment") == ()
