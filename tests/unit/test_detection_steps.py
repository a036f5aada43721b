"""A worker steps an account (or institution) through all the messages it took together in one
call. That must give what stepping through them one at a time gives: the same detector states,
the same alerts with the same figures (only how often an alert was updated on the way differs:
once per take instead of once per message), whatever the messages were taken with; and the
caller's state must stay as it was unless it gives it up."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from models.account_detection import step_account, step_account_messages
from models.detectors import DetectContext, StaticReferences
from models.institution_detection import (
    institution_records,
    step_institution,
    step_institution_messages,
)
from models.thresholds import load_thresholds
from schemas.messages import partition_for
from schemas.reference import REFERENCE_KINDS
from schemas.validation import convert
from services.gateway.intake import _record_decoder, to_message_record
from services.simulator import build_province, plan_violations, write_files
from services.simulator.push import REFERENCE_ORDER

SEED = 41
PARTITIONS = 4
AT = 1_764_000_000


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    """The messages a gateway would make of a simulated province's half day with violations, in
    push order, and the detectors' context over its reference data."""
    root: Path = tmp_path_factory.mktemp("steps")
    built = build_province(SEED, 24)
    write_files(built, root, hours=12.0, seed=SEED, violations=plan_violations(built, SEED, days=0.5))
    items = {}
    for kind in REFERENCE_ORDER:
        spec = REFERENCE_KINDS[kind]
        docs = json.loads((root / "reference" / f"{kind}.json").read_text("utf-8"))
        items[kind] = [msgspec.to_builtins(convert(doc, spec.type)) for doc in docs]
    references = StaticReferences(
        accounts=items["accounts"],
        institutions=items["institutions"],
        related_parties=items["related-parties"],
        products=items["products"],
    )
    ctx = DetectContext(references=references, thresholds=load_thresholds())
    messages = []
    for path in sorted((root / "batches").glob("*.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            batch = json.loads(line)
            by_partition = defaultdict(list)
            for raw in batch["records"]:
                record = to_message_record(_record_decoder.decode(json.dumps(raw).encode("utf-8")))
                by_partition[partition_for(record.account_id, PARTITIONS)].append(record)
            for partition, records in sorted(by_partition.items()):
                messages.append((f"{batch['bank_code']}/{batch['batch_id']}/{partition}", records))
    return ctx, messages


def _plain(value):
    return msgspec.json.decode(msgspec.json.encode(value))


def _changes(changes):
    """Each changed alert's last figures (without when it was written or how often it changed)."""
    last = {}
    for _, alert in changes:
        doc = msgspec.to_builtins(alert)
        last[alert.alert_id] = {k: v for k, v in doc.items() if k not in {"revision", "updated_at"}}
    return last


def _same(state):
    """A state without its alert memory's revision counts and report marks (how often and when an
    alert was updated on the way)."""
    plain = _plain(state) or {}
    for entry in (plain.get("alerts") or {}).values():
        entry.pop("revision", None)
        entry.pop("touched", None)
    return plain


def _chunks(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


def _per_key(messages, split):
    out = defaultdict(list)
    for msg_id, records in messages:
        for key, part in split(records).items():
            out[key].append((msg_id, part))
    return out


def _by_account(records):
    out = defaultdict(list)
    for record in records:
        out[record.account_id].append(record)
    return out


def _compare(key, parts, take, step_one, step_many):
    """Step ``key`` through ``parts`` message by message and take by take; check they agree and
    that no step changes its input. Returns the changes of each way."""
    one, one_changes = None, []
    for msg_id, records in parts:
        one, changed = step_one(one, key, msg_id, records, AT)
        one_changes += changed
    many, many_changes = None, []
    for chunk in _chunks(parts, take):
        snapshot = _plain(many)
        previous = many
        many, changed = step_many(many, key, chunk, AT)
        assert _plain(previous) == snapshot, key  # the input is not changed
        many_changes += changed
    assert _same(many) == _same(one), key
    assert _changes(many_changes) == _changes(one_changes), key
    return one_changes, many_changes


@pytest.mark.parametrize("take", [2, 5, 1000])
def test_accounts_stepped_per_take_as_per_message(province, take):
    ctx, messages = province
    changes_seen = updates_sent = 0
    for account_id, parts in _per_key(messages, _by_account).items():
        one, many = _compare(
            account_id,
            parts,
            take,
            lambda *a: step_account(ctx, *a),
            lambda *a: step_account_messages(ctx, *a),
        )
        changes_seen += len(one)
        updates_sent += len(many)
    assert changes_seen > 100  # the province's activity raises and updates alerts
    assert updates_sent < changes_seen  # an alert reported by several messages of a take changes once


def test_an_account_step_over_messages_leaves_its_input_as_it_was(province):
    ctx, messages = province
    parts = max(_per_key(messages, _by_account).items(), key=lambda kv: len(kv[1]))
    account_id, steps = parts
    state, _ = step_account_messages(ctx, None, account_id, steps[:3], AT)
    snapshot = _plain(state)
    step_account_messages(ctx, state, account_id, steps[3:], AT)
    assert _plain(state) == snapshot


@pytest.mark.parametrize("take", [2, 7, 1000])
def test_institutions_stepped_per_take_as_per_message(province, take):
    ctx, messages = province
    changes_seen = 0
    per_institution = _per_key(messages, lambda records: institution_records(ctx, records))
    assert max(len(parts) for parts in per_institution.values()) > 7  # takes do combine messages
    for institution_id, parts in per_institution.items():
        one, _ = _compare(
            institution_id,
            parts,
            take,
            lambda *a: step_institution(ctx, *a),
            lambda *a: step_institution_messages(ctx, *a),
        )
        changes_seen += len(one)
    assert changes_seen >= 5  # some of the province's violations are institution-level


def test_messages_of_a_take_seen_already_change_nothing(province):
    ctx, messages = province
    institution_id, parts = next(
        iter(_per_key(messages, lambda records: institution_records(ctx, records)).items())
    )
    state, _ = step_institution_messages(ctx, None, institution_id, parts[:4], AT)
    again, changed = step_institution_messages(ctx, state, institution_id, parts[:4], AT + 60)
    assert again is state and changed == []


def test_a_consumed_state_gives_what_a_copied_one_gives(province):
    """The worker gives the state it read up to the step (consume=True): no copy is made, and the
    result is the same as with a copy."""
    ctx, messages = province
    for account_id, parts in list(_per_key(messages, _by_account).items())[:200]:
        copied, copied_changes = None, []
        consumed, consumed_changes = None, []
        for chunk in _chunks(parts, 3):
            copied, changed = step_account_messages(ctx, copied, account_id, chunk, AT)
            copied_changes += changed
            consumed, changed = step_account_messages(ctx, consumed, account_id, chunk, AT, consume=True)
            consumed_changes += changed
        assert _plain(consumed) == _plain(copied), account_id
        assert _changes(consumed_changes) == _changes(copied_changes), account_id
    for institution_id, parts in _per_key(
        messages, lambda records: institution_records(ctx, records)
    ).items():
        copied = consumed = None
        for chunk in _chunks(parts, 2):
            copied, _ = step_institution_messages(ctx, copied, institution_id, chunk, AT)
            consumed, _ = step_institution_messages(ctx, consumed, institution_id, chunk, AT, consume=True)
        assert _plain(consumed) == _plain(copied), institution_id


class _Counting:
    """A detector that counts the messages it saw: in its working copy when it has one (as the
    detectors that clone do), else in a new state."""

    def __init__(self, in_place: bool) -> None:
        self.in_place = in_place

    def detect(self, ctx, state, key, msg_id, records):
        from models.detectors.common import clone

        if self.in_place:
            st = clone(state) or {"seen": []}
            st["seen"] = [*st["seen"], msg_id]
            return st, []
        return {"seen": [*(state or {}).get("seen", []), msg_id]}, []


@pytest.mark.parametrize("consume", [False, True])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_judged_states_come_back_as_plain_dicts(consume: bool, count: int) -> None:
    from models.stepping import judge_messages

    detectors = {"in_place": _Counting(True), "new": _Counting(False)}
    before = {"in_place": {"seen": ["m0"]}, "new": {"seen": ["m0"]}}
    kept = json.loads(json.dumps(before))
    messages = [(f"m{n}", []) for n in range(1, count + 1)]
    states, findings = judge_messages(detectors, None, before, "A", messages, consume)
    assert findings == []
    expected = [f"m{n}" for n in range(count + 1)]
    if count:
        assert {name: state["seen"] for name, state in states.items()} == {
            "in_place": expected,
            "new": expected,
        }
    assert all(type(state) is dict for state in states.values())  # none of them Owned
    if not consume:
        assert before == kept  # the caller's states as they were


class _Viewing:
    """A detector that notes the view of each message it judged."""

    def detect(self, ctx, state, key, msg_id, records):
        raise AssertionError("a step with views hands each detector the view")

    def detect_view(self, ctx, state, key, view):
        return {"views": [*(state or {}).get("views", []), view]}, []


def test_a_step_with_views_makes_one_per_message_for_all_its_detectors() -> None:
    from models.stepping import judge_messages

    made: list[tuple[str, int]] = []

    def view_of(msg_id, records):
        made.append((msg_id, len(records)))
        return (msg_id, len(made))

    messages = [("m1", [1, 2]), ("m2", []), ("m3", [3])]
    states, _ = judge_messages({"a": _Viewing(), "b": _Viewing()}, None, None, "I", messages, False, view_of)
    assert made == [("m1", 2), ("m2", 0), ("m3", 1)]
    assert states["a"]["views"] == states["b"]["views"] == [("m1", 1), ("m2", 2), ("m3", 3)]
