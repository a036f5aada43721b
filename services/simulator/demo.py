"""The feed of `make run`: a normal province with every typology injected early, so that a
newcomer sees within minutes what FundWatch is for.

Simulated days pass in ``DEMO_SIM_DAY_S`` wall seconds from ``HISTORY_DAYS`` back until the feed
reaches the present, then keep pace with the clock. The plan spreads one injection of each
positive variant (DOMAIN.md's typologies, several ways each) over the simulated days before the
present, on a few institutions; rapid growth needs ``min_history_days`` of history first, so it
comes last, on the sixth simulated day (about five minutes in; 9.5 minutes were measured at
60 s a day on a loaded machine, hence 50). The plan, with what each injection
is, is written beside the data (``<data-dir>/simulator/demo-plan.json``) so that a desk can tell
a demonstrated violation from the normal province.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from schemas.reference import InstitutionType
from services.simulator.province import Province
from services.simulator.push import HISTORY_DAYS
from services.simulator.violations import ViolationPlan, plan_violations

DEMO_SEED = 7
DEMO_SIM_DAY_S = 50.0
DEMO_RATE = 720.0  # with DEMO_SIM_DAY_S: 36,000 records an average simulated day
# Institutions of each type the demo injects into: a few, so most of the province stays normal.
PER_TYPE = 2
# The plan ends this much before the feed reaches the present, so that every step runs while
# simulated days still pass quickly.
_MARGIN_DAYS = 0.5


def demo_institutions(province: Province) -> list[str]:
    """The first ``PER_TYPE`` institutions of each type (the province's order is the seed's)."""
    chosen: list[str] = []
    taken: dict[InstitutionType, int] = {}
    for institution in province.institutions:
        if taken.get(institution.type, 0) < PER_TYPE:
            taken[institution.type] = taken.get(institution.type, 0) + 1
            chosen.append(institution.institution_id)
    return chosen


def demo_plan(seed: int, written_to: Path | None = None) -> Callable[[Province], ViolationPlan]:
    """The plan maker ``run_simulation`` takes: every positive variant once, no hard negatives,
    from the province's first day (the feed's start: ``run_simulation`` builds the province as of
    that day)."""

    def make(province: Province) -> ViolationPlan:
        plan = plan_violations(
            province,
            seed,
            days=HISTORY_DAYS - _MARGIN_DAYS,
            hard_negatives=False,
            institutions=demo_institutions(province),
        )
        if written_to is not None:
            written_to.parent.mkdir(parents=True, exist_ok=True)
            written_to.write_bytes(msgspec.json.format(msgspec.json.encode(plan.to_builtins())))
        return plan

    return make
