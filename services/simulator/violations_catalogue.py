"""Every typology and variant a ``ViolationPlan`` may hold, in planning order, and the
``Injection`` that names one. The variants are defined with their planning and steps in the
typology modules (``violations_misappropriation``, ``violations_self_financing``,
``violations_reserves``, ``violations_large_value``, ``violations_pools``, ``violations_clearing``,
``violations_excess_return``, ``violations_maturity_mismatch``, ``violations_growth`` and
``violations_institutions``); ``violations`` plans and runs them.
The order of ``VARIANTS`` is the order the planner draws them in: it is part of what a seed gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.simulator.violations_base import Variant, _iso
from services.simulator.violations_clearing import MIRRORED_LEGS, OWN_TRANSFER_BETWEEN_BANKS
from services.simulator.violations_excess_return import COVERED_HIGH_YIELD
from services.simulator.violations_institutions import INSTITUTION_VARIANTS
from services.simulator.violations_large_value import BELOW_LINE, LARGE_VALUE_VARIANTS
from services.simulator.violations_misappropriation import CONTRACTUAL_FEE, MISAPPROPRIATION_VARIANTS
from services.simulator.violations_pools import POOL_VARIANTS
from services.simulator.violations_reserves import RESERVE_VARIANTS
from services.simulator.violations_self_financing import LARGE_LOAN, LOAN_TO_RELATED

TYPOLOGIES = (
    "misappropriation", "self_financing", "commingling", "reserve_shortfall", "large_value", "fund_pool",
    "excess_return", "maturity_mismatch", "investor_cap_breach", "rapid_growth", "disguised_clearing",
)  # fmt: skip


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        *MISAPPROPRIATION_VARIANTS,
        LOAN_TO_RELATED,
        *RESERVE_VARIANTS,
        *LARGE_VALUE_VARIANTS,
        *POOL_VARIANTS,
        CONTRACTUAL_FEE,
        COVERED_HIGH_YIELD,
        OWN_TRANSFER_BETWEEN_BANKS,
        MIRRORED_LEGS,
        LARGE_LOAN,
        BELOW_LINE,
        *INSTITUTION_VARIANTS,
    )
}


@dataclass(frozen=True, slots=True)
class Injection:
    """One planned violation or hard negative: ``times`` are its steps (Unix seconds, ascending),
    ``params`` the accounts and draws fixed when planning (amounts that depend on the state of
    the books are sized when the step runs)."""

    injection_id: str
    variant: str
    institution_id: str
    times: tuple[int, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def typology(self) -> str:
        return VARIANTS[self.variant].typology

    @property
    def kind(self) -> str:
        return VARIANTS[self.variant].kind

    def to_builtins(self) -> dict[str, Any]:
        return {
            "injection_id": self.injection_id,
            "variant": self.variant,
            "typology": self.typology,
            "kind": self.kind,
            "institution_id": self.institution_id,
            "times": [_iso(t) for t in self.times],
            "params": msgspec.to_builtins(dict(self.params)),
        }
