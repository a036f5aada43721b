"""The declared yields of the products of one institution type, as `excess_return` compares a
product's promised yield with them: median, MAD and a robust z-score, kept per group of products
while the reference view hands out the same group; and the lines a product's reference data
alone decides against them (``Peers.lines``), kept with the group as well."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

from models.detectors import product_flows as pf
from models.detectors.context import DetectContext
from models.detectors.figures import fraction_of

MAD_SCALE = Fraction(14826, 10000)  # MAD to standard deviation under normality


def _median(values: list[Decimal]) -> Decimal:
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


class ProductLines(NamedTuple):
    """What excess_return decides of a product from the reference data and the thresholds alone."""

    declared: Decimal | None  # the declared annual yield
    project: Decimal | None  # the underlying project's rate
    lpr: Fraction
    multiple: Fraction
    legal_cap: Fraction  # lpr x multiple
    robust_z: Fraction
    over_project: bool
    over_cap: bool
    z: Fraction | None  # the yield's robust z among the peers
    outlier: bool
    split: bool  # a split term (product_flows.is_split)


_LINES_MAX = 4096  # products x thresholds kept per group


class Peers:
    """The declared yields of every product of the institution's type: median and MAD."""

    def __init__(self, products: Iterable[dict[str, Any]]) -> None:
        yields = sorted(
            y for y in (pf.rate_of(p.get("declared_annual_yield")) for p in products) if y is not None
        )
        self.count = len(yields)
        self.median = _median(yields) if yields else None
        self.mad = _median(sorted(abs(y - self.median) for y in yields)) if yields else None
        # (product id, thresholds id, term ratio line) -> (product, thresholds, its lines): each
        # entry holds its product and thresholds, so neither id is reused while it lives
        self._lines: dict[tuple[int, int, type, Any], tuple[Any, Any, ProductLines]] = {}

    def z(self, value: Decimal, min_peers: int) -> Fraction | None:
        """The robust z-score of a yield, or None when the group is too small or has no spread."""
        if self.count < min_peers or self.median is None or not self.mad:
            return None
        return Fraction(value - self.median) / (MAD_SCALE * Fraction(self.mad))

    def lines(self, cfg: dict[str, Any], ratio_max_value: Any, product: dict[str, Any]) -> ProductLines:
        """``product_lines`` of a product against this group, kept: an institution's every message
        judges each of its products again, with the same reference data and thresholds."""
        key = (id(product), id(cfg), type(ratio_max_value), ratio_max_value)
        found = self._lines.get(key)
        if found is None or found[0] is not product or found[1] is not cfg:
            if len(self._lines) >= _LINES_MAX:
                self._lines.clear()
            found = self._lines[key] = (product, cfg, product_lines(cfg, ratio_max_value, self, product))
        return found[2]


def product_lines(
    cfg: dict[str, Any], ratio_max_value: Any, peers: Peers, product: dict[str, Any]
) -> ProductLines:
    """The lines a product's reference data crosses: its declared yield over its project's rate,
    over the legal cap (lpr_one_year x lpr_multiple), a peer outlier; and whether its term is split."""
    declared = pf.rate_of(product.get("declared_annual_yield"))
    project = pf.rate_of(product.get("underlying_project_rate"))
    lpr, multiple = fraction_of(cfg["lpr_one_year"]), fraction_of(cfg["lpr_multiple"])
    legal_cap = lpr * multiple
    robust_z, min_peers = fraction_of(cfg["robust_z"]), int(cfg["min_peers"])
    z = peers.z(declared, min_peers) if declared is not None else None
    return ProductLines(
        declared=declared,
        project=project,
        lpr=lpr,
        multiple=multiple,
        legal_cap=legal_cap,
        robust_z=robust_z,
        over_project=declared is not None and project is not None and declared > project,
        over_cap=declared is not None and Fraction(declared) > legal_cap,
        z=z,
        outlier=z is not None and z > robust_z,
        split=pf.is_split(product, fraction_of(ratio_max_value)),
    )


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
