"""Registration screening (DOMAIN.md, seed plan 三(二), 四(二)2): names and business scopes that
carry words of finance put an institution on the key-supervision list.

The words are the union of DOMAIN.md's list and the plan's 四(二)2 list. A word inside a longer
word that also hit (基金 in 基金管理) is not counted again: one phrase is one hit.
"""

from __future__ import annotations

from typing import NamedTuple

KEYWORDS: tuple[str, ...] = (
    "交易所", "交易中心", "金融", "互联网金融", "金融服务", "金融信息服务", "资产管理", "理财", "基金",
    "基金管理", "财富管理", "股权投资基金", "投资管理", "投资咨询", "网贷", "网络借贷", "P2P",
    "股权众筹", "互联网保险", "支付",
)  # fmt: skip


class Hit(NamedTuple):
    keyword: str
    field: str  # "name" or "business_scope"


def _hits_in(text: str) -> list[str]:
    folded = text.upper()  # "p2p" is P2P
    found = [word for word in KEYWORDS if word.upper() in folded]
    # a word that is part of a longer word found in the same text is the same phrase
    return [word for word in found if not any(word != other and word in other for other in found)]


def screen(name: str, business_scope: str) -> list[Hit]:
    """The key-supervision words in an institution's name and business scope, longest phrases
    only, in the order of KEYWORDS, the name's first."""
    hits = [Hit(word, "name") for word in _hits_in(name or "")]
    hits += [Hit(word, "business_scope") for word in _hits_in(business_scope or "")]
    return hits
