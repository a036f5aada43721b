"""A synthetic province of internet-finance institutions and the custody-bank feed for it.

``build_province`` draws the institutions, accounts, related parties and products from a seed;
``Feed`` turns normal activity into the records each custody bank pushes; ``run_simulation``
pushes them to a running API and ``write_files`` writes them out instead. ``plan_violations`` and
``Feed(..., violations=plan)`` inject labelled violations (``write_files(..., violations=plan)`` writes them).
"""

from services.simulator.feed import DEFAULT_INTENSITY, Feed
from services.simulator.province import Province, build_province
from services.simulator.push import SimulationStats, WrittenFiles, run_simulation, write_files
from services.simulator.violations import ViolationPlan, plan_violations

__all__ = [
    "DEFAULT_INTENSITY",
    "Feed",
    "Province",
    "SimulationStats",
    "ViolationPlan",
    "WrittenFiles",
    "build_province",
    "plan_violations",
    "run_simulation",
    "write_files",
]
