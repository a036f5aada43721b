"""Whether an account is held by a natural person or an organisation, from its reference item:
``holder_type`` where the bank sends it, else a heuristic on ``holder_name`` (large_value's
reporting lines differ for the two; DOMAIN.md)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

# Words that only organisations carry in their names (公司, 有限, 合伙 ... and the endings of
# shops, branches and public bodies), in Chinese and in English.
ORG_MARKERS = (
    "公司", "有限", "合伙", "中心", "银行", "基金", "集团", "事务所", "协会", "合作社", "研究院",
    "研究所", "委员会", "管理局", "政府", "学校", "学院", "大学", "医院", "商行", "经营部",
    "门市部", "营业部", "办事处", "分行", "支行", "信用社", "联社", "基金会", "工作室", "俱乐部",
    "商会", "工会", "企业", "股份", "控股", "投资", "实业", "科技", "贸易", "商贸", "财政",
    "工厂", "商店", "超市", "酒店", "饭店", "药店", "农场", "个体工商户",
)  # fmt: skip
ORG_SUFFIXES = ("厂", "店", "局", "厅", "馆", "社", "所", "院", "部", "站", "队", "场", "处", "署")
ORG_MARKERS_EN = (
    "co.", "co,", "company", "ltd", "limited", "inc", "llc", "llp", "corp", "plc", "gmbh",
    "bank", "fund", "group", "partnership", "association", "trust", "holdings", "s.a.",
)  # fmt: skip

# A Chinese personal name: 2 to 4 Han characters, or a transliterated name with the middle dot
# (e.g. 阿不都·热合曼); banks sometimes mask all but the surname (张**).
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_PERSON_ZH = re.compile(rf"^[{_HAN}][{_HAN}*＊]{{1,3}}$")
_PERSON_ZH_DOT = re.compile(rf"^[{_HAN}]{{1,10}}([·•・][{_HAN}]{{1,10}}){{1,3}}$")
_PERSON_EN = re.compile(r"^[A-Za-z][A-Za-z'\-]*(\.?\s+[A-Za-z][A-Za-z'\-]*){1,3}$")


def is_natural_person(account: Mapping[str, Any] | None) -> bool | None:
    """Whether an account is held by a natural person: True, False, or None when unknown (the
    rules are on ``_natural``; asked per record, answered once per holder)."""
    if account is None:
        return None
    return _natural(str(account.get("holder_type") or ""), str(account.get("holder_name") or ""))


@functools.lru_cache(maxsize=65_536)
def _natural(holder_type_text: str, holder_name: str) -> bool | None:
    """Whether a holder is a natural person: True, False, or None when unknown.

    ``holder_type`` decides when the reference item carries it ("person" / "organization").
    Otherwise a heuristic on ``holder_name``, in this order:

    1. a name containing an organisation marker (公司, 有限, 合伙, 中心, 银行, 基金, 集团, 事务所,
       协会, 合作社 ... or English Co./Ltd/Bank/Fund ...) or ending in an organisation suffix
       (厂, 店, 局, 所, 院, 部 ...) is an organisation;
    2. 2 to 4 Han characters (masked ones ``*`` allowed after the surname), a Han name with a
       middle dot, or 2 to 4 Latin words is a person;
    3. anything else (empty, long names without a marker) is unknown.
    """
    holder_type = holder_type_text.strip().lower()
    if holder_type in ("person", "natural_person", "individual"):
        return True
    if holder_type in ("organization", "organisation", "company", "legal_person"):
        return False
    name = holder_name.strip()
    if not name:
        return None
    lowered = name.lower()
    if any(marker in name for marker in ORG_MARKERS) or name.endswith(ORG_SUFFIXES):
        return False
    if any(re.search(rf"(^|[^a-z]){re.escape(m)}($|[^a-z])", lowered) for m in ORG_MARKERS_EN):
        return False
    compact = name.replace(" ", "")
    if _PERSON_ZH.match(compact) or _PERSON_ZH_DOT.match(compact) or _PERSON_EN.match(name):
        return True
    return None
