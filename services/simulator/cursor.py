"""Where a pushed feed stands, kept on disk so that a restarted feed resumes instead of repeating.

The feed is deterministic for its seed, start, intensity and run id, so a restarted feed makes
the same records again; the cursor says, per bank, how many of them the API has already answered
for. The resumed feed makes them again (fast: they are not paced) and drops them instead of pushing.
Batches answered just before the stop and not yet noted here are pushed again; the gateway counts
their records as duplicates and processes none of them twice. Resumed batches carry ids of their
own (``<run>.r<n>-<bank>-<seq>``), so a batch cut differently after a restart is never mistaken
for one sent before (a batch id re-sent with other content is refused).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

log = logging.getLogger("fundwatch.simulator")

CURSOR_VERSION = 1


class FeedSettings(msgspec.Struct, frozen=True):
    """What makes a feed's records: a cursor is valid only for a feed made the same way."""

    seed: int
    institutions: int
    intensity: float
    demo: bool


class CursorState(msgspec.Struct):
    settings: FeedSettings
    run_id: str
    start: int  # the first simulated moment, Unix seconds
    resumes: int = 0
    # Per bank: records the API has answered for, in the order the feed made them.
    answered: dict[str, int] = msgspec.field(default_factory=dict)
    version: int = CURSOR_VERSION


class FeedCursor:
    """The state file of one data directory's feed (``<data-dir>/simulator/cursor.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.state: CursorState | None = None
        self._to_skip: dict[str, int] = {}

    def resume_or_start(self, settings: FeedSettings, fresh_start: int, fresh_run_id: str) -> CursorState:
        """The saved state when it belongs to a feed made with ``settings`` (its start and run id
        then hold), else a new one from ``fresh_start`` with ``fresh_run_id``."""
        saved = self._read()
        if saved is not None and saved.settings == settings and saved.version == CURSOR_VERSION:
            saved.resumes += 1
            self.state = saved
            self._to_skip = dict(saved.answered)
            log.info(
                "simulator resumes run_id=%s resumes=%d records_already_answered=%d",
                saved.run_id, saved.resumes, sum(saved.answered.values()),
            )  # fmt: skip
        else:
            if saved is not None:
                log.info("simulator cursor belongs to another feed; starting afresh path=%s", self.path)
            self.state = CursorState(settings=settings, run_id=fresh_run_id, start=fresh_start)
        self._write()
        return self.state

    @property
    def batch_prefix(self) -> str:
        """Batch ids of this run of the feed: the run id, and which resume it is."""
        assert self.state is not None
        return self.state.run_id if not self.state.resumes else f"{self.state.run_id}.r{self.state.resumes}"

    @property
    def skipping(self) -> bool:
        return any(self._to_skip.values())

    def drop_answered(self, made: dict[str, list[dict]]) -> dict[str, list[dict]]:
        """``made`` without the records the API answered for before the restart."""
        if not self.skipping:
            return made
        kept: dict[str, list[dict]] = {}
        for bank, records in made.items():
            skip = min(self._to_skip.get(bank, 0), len(records))
            if skip:
                self._to_skip[bank] -= skip
            if skip < len(records):
                kept[bank] = records[skip:]
        return kept

    def answered(self, bank: str, records: int) -> None:
        """The API answered a batch of ``records`` of ``bank``: note it before the next one."""
        assert self.state is not None
        self.state.answered[bank] = self.state.answered.get(bank, 0) + records
        self._write()

    def _read(self) -> CursorState | None:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=CursorState)
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            log.warning("simulator cursor unreadable, starting afresh path=%s error=%s", self.path, error)
            return None

    def _write(self) -> None:
        # Written aside and renamed, so a kill mid-write leaves the previous cursor whole.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_suffix(".tmp")
        aside.write_bytes(msgspec.json.encode(self.state))
        os.replace(aside, self.path)
