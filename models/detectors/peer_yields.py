"""The declared yields of the products of one institution type, as `excess_return` compares a
product's promised yield with them: median, MAD and a robust z-score, kept per group of products
while the reference view hands out the same group."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from models.detectors import product_flows as pf
from models.detectors.context import DetectContext

MAD_SCALE = Fraction(14826, 10000)  # MAD to standard deviation under normality


def _median(values: list[Decimal]) -> Decimal:
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


class Peers:
    """The declared yields of every product of the institution's type: median and MAD."""

    def __init__(self, products: Iterable[dict[str, Any]]) -> None:
        yields = sorted(
            y for y in (pf.rate_of(p.get("declared_annual_yield")) for p in products) if y is not None
        )
        self.count = len(yields)
        self.median = _median(yields) if yields else None
        self.mad = _median(sorted(abs(y - self.median) for y in yields)) if yields else None

    def z(self, value: Decimal, min_peers: int) -> Fraction | None:
        """The robust z-score of a yield, or None when the group is too small or has no spread."""
        if self.count < min_peers or self.median is None or not self.mad:
            return None
        return Fraction(value - self.median) / (MAD_SCALE * Fraction(self.mad))


# The peer figures of a group, kept while the reference view hands out the same group object
# (streams/reference.py: until a product or institution changes): an institution's every
# message re-judges its products, and the group of a type holds every product of that type.
# Each entry holds its group, so the group's id is not reused while the entry lives.
_PEERS: dict[tuple[int, str], tuple[Sequence[dict[str, Any]], Peers]] = {}


def peers_of(ctx: DetectContext, institution_type: str | None) -> Peers:
    products = ctx.references.products_of_type(institution_type) if institution_type else ()
    key = (id(products), institution_type or "")
    found = _PEERS.get(key)
    if found is None or found[0] is not products:
        if len(_PEERS) > 256:  # groups made anew per call (a review's overlay, tests): start over
            _PEERS.clear()
        found = _PEERS[key] = (products, Peers(products))
    return found[1]
