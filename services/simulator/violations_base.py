"""What every violation module shares: the kinds of truth, the shape of a variant and of a label,
record groups, and the time helpers (Beijing days, RFC 3339 stamps).

``violations`` (the plan), ``violations_catalogue`` (the variants), ``violations_injector`` (the
injector), the typology modules (``violations_misappropriation`` ... ``violations_institutions``)
and ``institution_truth`` (the product- and institution-level rule oracles) all build on this
module; it imports none of them, so there is no cycle.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from schemas.fields import BEIJING
from schemas.reference import InstitutionType
from services.simulator.ledger import Label

POSITIVE = "positive"
HARD_NEGATIVE = "hard_negative"

# The purposes of custody flows by institution type (deposits, loans, payouts, fees).
_PURPOSES: dict[InstitutionType, dict[str, str]] = {
    InstitutionType.p2p_lending: {"deposit": "出借资金充值", "loan": "借款放款", "payout": "出借本息回款", "fee": "平台服务费"},
    InstitutionType.equity_crowdfunding: {"deposit": "股权众筹认购款", "loan": "融资款划付", "payout": "投资收益分配", "fee": "融资顾问费"},
    InstitutionType.asset_management: {"deposit": "基金认购款", "loan": "投资款划付", "payout": "基金收益分配", "fee": "基金管理费"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of injecting a typology. A hard negative names the typology it resembles in
    ``typology`` and every typology that must not flag it in ``not_typologies``."""

    name: str
    typology: str
    kind: str
    types: frozenset[InstitutionType]
    default_count: int
    description: str
    not_typologies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ViolationLabel(Label):
    """Ground truth for one alert-sized finding (or one hard negative).

    The inherited fields keep the ledger's label shape: ``labels`` is ``(typology, "<kind>:<what>")``,
    ``records`` the (bank code, record id) pairs, ``at`` the window start in Unix seconds.
    """

    label_id: str = ""
    typology: str = ""
    kind: str = POSITIVE  # "positive" | "hard_negative"
    what: str = ""
    key: str = ""  # the detector's finding key where one exists
    account_id: str | None = None
    record_ids: tuple[str, ...] = ()
    window_start: str = ""  # RFC 3339, Beijing time
    window_end: str = ""
    episode_id: str | None = None  # the injection behind it; None: normal activity
    product_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""


class _Unsuitable(Exception):
    """This institution cannot host this variant."""


@dataclass(slots=True)
class _Bucket:
    """Records of one finding-sized group: sums, (bank, record id)s and the time span."""

    cents: int = 0
    count: int = 0
    ids: list[tuple[str, str]] = field(default_factory=list)
    first: str = ""
    last: str = ""
    tags: Counter[str] = field(default_factory=Counter)

    def add(self, bank: str, record_id: str, stamp: str, cents: int, tag: str = "") -> None:
        self.cents += cents
        self.count += 1
        self.ids.append((bank, record_id))
        if not self.first or stamp < self.first:
            self.first = stamp
        if stamp > self.last:
            self.last = stamp
        if tag:
            self.tags[tag] += cents


def _copy(bucket: _Bucket) -> _Bucket:
    return _Bucket(
        bucket.cents, bucket.count, list(bucket.ids), bucket.first, bucket.last, Counter(bucket.tags)
    )


def _merge(into: _Bucket, other: _Bucket) -> None:
    """Add ``other``'s records to ``into`` (sums by tag aside: the metrics say those)."""
    into.ids.extend(other.ids)
    into.count += other.count
    into.first = min(filter(None, (into.first, other.first)))
    into.last = max(into.last, other.last)


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, BEIJING).isoformat()


def _day_of(ts: int) -> str:
    return datetime.fromtimestamp(ts, BEIJING).date().isoformat()


def _window(day: str, days: int) -> list[str]:
    last = date.fromisoformat(day)
    return [(last - timedelta(days=n)).isoformat() for n in range(days)]


def _ratio(value: Fraction) -> str:
    return f"{float(value):.6f}"
