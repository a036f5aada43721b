"""`fundwatch replay`: the detectors run again over the raw records ClickHouse holds for a period,
under the current thresholds (the baseline) and a candidate thresholds file, and the alerts each
raises compared: gained, lost and graded differently, per typology, institution and region.

It reads and never writes: live alerts, their history and every other table stay as they were.

- ``compare``: the pure comparison of two alert lists;
- ``source``: the read-only queries (reference data, raw records a slice at a time);
- ``engine``: both runs over one read of the records;
- ``render``: the terminal tables and the JSON.
"""

from services.replay.compare import AlertView, Comparison, GroupCounts, SeverityChange, compare
from services.replay.engine import ReplayReport, run_replay

__all__ = [
    "AlertView",
    "Comparison",
    "GroupCounts",
    "ReplayReport",
    "SeverityChange",
    "compare",
    "run_replay",
]
