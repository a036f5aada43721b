"""What several institution-level detectors read alike of one message: the records of the
institution's custody and reserve accounts, and the product flows (models/detectors/
product_flows.py) that excess_return and maturity_mismatch both fold.

Each detector stays a pure step of its own state and the message (models/detectors/protocol.py);
only the work is shared. While an institution's step runs (``sharing``, models/institution_detection)
a message's ``MessageView`` is made once and handed to each detector that asks for it; outside
one (a detector called alone, as the unit tests do) every call makes its own, so nothing outlives a
step and nothing depends on which detectors ran before.

Product flows. excess_return and maturity_mismatch keep the same product-flow parts (``wm``,
``src``, ``products``, ``un``, ``cp``) folded from the same records: ``fold_product_flows`` folds
them once per message. The second detector takes the first one's result only when its own parts
are the very objects the first one started from (so their contents were equal, and the same fold
of the same records gives the same parts); then both states hold the same objects, which is what
makes the check hold again at the next message. When they are not the same objects (a state just
decoded or copied) the second folds on its own, and adopts the first one's result only if it came
out equal. The states hold the same JSON either way; one that is changed in place (``consume``,
models/detectors/common.Owned) is changed by that one fold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from models.detectors import product_flows as pf
from models.detectors.common import source_of
from models.detectors.context import DetectContext
from schemas.messages import TxnRecord

# the keys of a state that product_flows.fold and prune read and write
FLOW_KEYS = ("wm", "src", "products", "un", "cp")
_ABSENT = object()


class MessageView:
    """One message's records as the institution's detectors read them."""

    __slots__ = ("ctx", "institution_id", "msg_id", "records", "custody", "sources", "flows")

    def __init__(self, ctx: DetectContext, institution_id: str, msg_id: str, records: list[Any]) -> None:
        self.ctx = ctx
        self.institution_id = institution_id
        self.msg_id = msg_id
        self.records = records  # held, so that the id this view is found by is not reused
        # the transactions booked on the institution's custody and reserve accounts (those of
        # product_flows.of_institution on a custody account): the sources of product flows and
        # of investors' payments
        self.custody: list[TxnRecord] = []
        custody_of: dict[str, bool] = {}  # account id -> one of the institution's custody accounts
        for record in records:
            if not isinstance(record, TxnRecord):
                continue
            account_id = record.account_id
            custody = custody_of.get(account_id)
            if custody is None:
                custody = custody_of[account_id] = ctx.institution_id(
                    account_id
                ) == institution_id and pf.is_custody(ctx, account_id)
            if custody:
                self.custody.append(record)
        self.sources = _latest_per_bank(ctx, self.custody)
        # (parts before, parts after, keys added) of the first product-flow fold of this message
        self.flows: tuple[tuple[Any, ...], tuple[Any, ...], list[str]] | None = None


def _latest_per_bank(ctx: DetectContext, records: list[TxnRecord]) -> list[TxnRecord]:
    """One record per bank that sent some of ``records``, one of its latest, in the order the
    banks first appear: all that common.advance_sources reads of them (each bank's latest event
    time), so it advances a watermark over these as over all of them."""
    latest: dict[str, TxnRecord] = {}
    bank_of: dict[str, str] = {}  # an account's records all come from its bank
    for record in records:
        bank = record.bank_code  # the bank as advance_sources finds it (common.source_of)
        if not bank:
            bank = bank_of.get(record.account_id)
            if bank is None:
                bank = bank_of[record.account_id] = source_of(ctx, record)
        best = latest.get(bank)
        if best is None or record.booked_at > best.booked_at:
            latest[bank] = record
    return list(latest.values())


# the views of the running step, by message id and id of the records list; None outside a step
_views: dict[tuple[str, int], MessageView] | None = None


@contextmanager
def sharing() -> Iterator[None]:
    """Share each message's view among the detectors for the duration of one step."""
    global _views
    outer = _views
    _views = {}
    try:
        yield
    finally:
        _views = outer


def view_of(ctx: DetectContext, institution_id: str, msg_id: str, records: list[Any]) -> MessageView:
    """The message's view: the step's own when one is running, else a new one. Its fold is the
    message's own: each message of a step has a view of its own (by its id), even one whose
    records list is another message's."""
    if _views is None:
        return MessageView(ctx, institution_id, msg_id, records)
    key = (msg_id, id(records))
    view = _views.get(key)
    if (
        view is None
        or view.records is not records
        or view.ctx is not ctx
        or view.institution_id != institution_id
    ):
        view = _views[key] = MessageView(ctx, institution_id, msg_id, records)
    return view


def _parts(st: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(st.get(key, _ABSENT) for key in FLOW_KEYS)


def _same_start(mine: tuple[Any, ...], theirs: tuple[Any, ...]) -> bool:
    """Whether two states' product-flow parts are the same: equal watermarks, the same objects."""
    return mine[0] == theirs[0] and all(a is b for a, b in zip(mine[1:], theirs[1:], strict=True))


def _adopt(st: dict[str, Any], after: tuple[Any, ...], added: list[str]) -> None:
    """Take another state's folded parts: keys it had already keep their place, the ones its fold
    added come in the order that fold added them."""
    values = dict(zip(FLOW_KEYS, after, strict=True))
    for key in FLOW_KEYS:
        if key in st and values[key] is not _ABSENT:
            st[key] = values[key]
    for key in added:
        st[key] = values[key]


def fold_product_flows(view: MessageView, st: dict[str, Any]) -> None:
    """product_flows.fold then prune of the message's records of the institution into ``st``,
    done once per message for the states that hold the same product-flow parts (module
    docstring)."""
    before = _parts(st)
    if view.flows is not None and _same_start(before, view.flows[0]):
        _adopt(st, view.flows[1], view.flows[2])
        return
    pf.fold_custody(view.ctx, st, view.institution_id, view.custody, view.sources)
    pf.prune(st)
    after = _parts(st)
    if view.flows is None:
        added = [key for key in st if key in FLOW_KEYS and before[FLOW_KEYS.index(key)] is _ABSENT]
        view.flows = (before, after, added)
    elif _equal(after, view.flows[1]):
        _adopt(st, view.flows[1], [])  # equal contents: the same objects from here on


def _equal(mine: tuple[Any, ...], theirs: tuple[Any, ...]) -> bool:
    return all(
        (a is _ABSENT) == (b is _ABSENT) and (a is _ABSENT or a == b)
        for a, b in zip(mine, theirs, strict=True)
    )
