"""`fundwatch replay`: the detectors run again over the raw records ClickHouse holds for a period,
under the current thresholds (the baseline) and a candidate thresholds file, and the alerts each
raises compared: gained, lost and graded differently, per typology, institution and region.

It reads and never writes: live alerts, their history and every other table stay as they were.

With ``--save`` the report alone is kept, in tables of its own, for the API and the console.

- ``compare``: the pure comparison of two alert lists, counted per typology, institution, region;
- ``source``: the read-only queries (reference data, raw records a slice at a time);
- ``models``: the anomaly model artefact each run judges with;
- ``engine``: both runs over one read of the records;
- ``render``: the terminal tables and the JSON;
- ``saved`` and ``store``: a report as the rows of its tables, and their writing;
- ``command``: the command line.
"""

from typing import Any

from services.replay.compare import AlertView, Comparison, GroupCounts, SeverityChange, compare


def __getattr__(name: str) -> Any:
    # the engine brings the detectors and the in-process pipeline: only a replay that runs pays
    # for them, not every `fundwatch` command that builds its parser
    if name in {"ReplayReport", "run_replay"}:
        from services.replay import engine

        return getattr(engine, name)
    raise AttributeError(name)


__all__ = [
    "AlertView",
    "Comparison",
    "GroupCounts",
    "ReplayReport",
    "SeverityChange",
    "compare",
    "run_replay",
]
