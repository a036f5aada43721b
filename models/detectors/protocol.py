"""The contract every detector keeps: what the account and institution steps (models/stepping,
models/account_detection, models/institution_detection) and the tests call, and nothing else.

A detector module satisfies one of these protocols as it is: a module object with ``NAME``,
``VERSION``, ``detect`` and ``current`` is an ``AccountDetector`` (or an ``InstitutionDetector``)
structurally, so the registries hold the modules themselves and a step calls ``detect`` with no
indirection on the hot path. tests/unit/test_detector_protocol.py checks every registered one.

What the protocols promise, beyond the signatures:

- **State** is the detector's own per-key state (one account, or one institution), plain JSON: dicts,
  lists, strings and numbers, no record ids. ``None`` or an empty dict is a key the detector has
  seen nothing of; an empty dict returned means nothing to keep. It is bounded by event-time
  pruning (the open days and ``LATE_KEEP`` after, models/detectors/common), not by the number of
  records. ``detect`` may change the state it is given in place only when the caller gave it up
  (models/detectors/common.Owned and ``consume``); the caller keeps the returned one.
- **Order independence.** The state's figures are a function of the *set* of records folded, so
  any split of the same records into messages, in any order, leaves the same state and the same
  ``current`` findings, for records that arrive within ``ALLOWED_LATENESS`` of the end of their
  Beijing day (tests/unit/test_detectors_common.py).
- **Replay safety.** ``detect`` is pure: no I/O, no clock, no randomness; the same state and
  message give the same state and findings, so replaying a partition gives the same alerts with
  the same figures. A message delivered twice is recognised by its id before a detector sees it
  (the steps keep the recent message ids) and a record sent twice by the gateway's keys; a
  detector folds what it is given.
- **Lateness.** The watermark follows the sources (banks) that feed the key; a record of a sealed
  day is late and still judged against the figures kept for it; the findings it changes say
  ``late: true`` in their metrics (models/detectors/common, "Event time and lateness").
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from models.detectors.context import DetectContext
from models.detectors.institution_messages import MessageView
from models.findings import Finding
from schemas.messages import BalanceRecord, TxnRecord


@runtime_checkable
class AccountDetector(Protocol):
    """A detector of one account's records (models/detectors.DETECTORS)."""

    NAME: str
    """The typology: the registry key, an alert's ``typology`` and the key of its state."""
    VERSION: str
    """Changes whenever a finding's figures for the same records could change."""

    def detect(
        self,
        ctx: DetectContext,
        state: dict[str, Any] | None,
        account_id: str,
        msg_id: str,
        records: list[TxnRecord | BalanceRecord],
    ) -> tuple[dict[str, Any], list[Finding]]:
        """Fold one message's records of ``account_id`` into ``state``: the new state, and the
        findings the message changed (each with its figures over everything folded so far, so
        the last one per key is the alert)."""
        ...

    def current(self, ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
        """The findings ``state`` holds open now, as ``detect`` reported them last."""
        ...


@runtime_checkable
class InstitutionDetector(Protocol):
    """A detector of one institution's records: its custody, reserve and own accounts' transactions
    of every bank, re-keyed by institution (models/institution_detection.INSTITUTION_DETECTORS). A
    product review is a message with no records: the findings of reference data alone."""

    NAME: str
    """The typology: the registry key, an alert's ``typology`` and the key of its state."""
    VERSION: str
    """Changes whenever a finding's figures for the same records could change."""
    SCOPE: str
    """Always ``"institution"``."""

    def detect(
        self,
        ctx: DetectContext,
        state: dict[str, Any] | None,
        institution_id: str,
        msg_id: str,
        records: list[TxnRecord],
    ) -> tuple[dict[str, Any], list[Finding]]:
        """Fold one message's transactions of ``institution_id`` into ``state``: the new state and
        the findings the message changed, as ``AccountDetector.detect``."""
        ...

    def detect_view(
        self, ctx: DetectContext, state: dict[str, Any] | None, institution_id: str, view: MessageView
    ) -> tuple[dict[str, Any], list[Finding]]:
        """``detect`` of the message ``view`` was made of (institution_messages.view_of): the
        institution's step makes one view of each message and hands it to all its detectors."""
        ...

    def current(self, ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
        """The findings ``state`` and the reference data hold open now."""
        ...


Detector = AccountDetector | InstitutionDetector
