"""The feed's cursor: a restarted feed drops what the API answered for and pushes the rest, under
batch ids of its own; a cursor of another feed is not used."""

from __future__ import annotations

from datetime import datetime

from schemas.fields import BEIJING
from services.simulator import Feed, build_province
from services.simulator.cursor import FeedCursor, FeedSettings

START = datetime(2026, 11, 2, tzinfo=BEIJING)
SETTINGS = FeedSettings(seed=5, institutions=8, intensity=2000.0, demo=True)


def _feed(run_id: str) -> Feed:
    province = build_province(5, 8, as_of=START.date())
    return Feed(province, 5, START, intensity=SETTINGS.intensity, run_id=run_id)


def _records(feed: Feed, cursor: FeedCursor | None, hours: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for _ in range(hours):
        made = feed.advance(3600)
        if cursor is not None:
            made = cursor.drop_answered(made)
        for bank, records in made.items():
            out.setdefault(bank, []).extend(r["record_id"] for r in records)
    return out


def test_a_resumed_feed_pushes_exactly_what_was_not_answered(tmp_path):
    path = tmp_path / "simulator" / "cursor.json"
    first = FeedCursor(path)
    state = first.resume_or_start(SETTINGS, int(START.timestamp()), "run-a")
    assert state.run_id == "run-a" and first.batch_prefix == "run-a" and not first.skipping
    everything = _records(_feed("run-a"), None, 12)
    answered = {bank: len(ids) // 3 for bank, ids in everything.items()}
    for bank, n in answered.items():
        first.answered(bank, n - 5)
        first.answered(bank, 5)

    again = FeedCursor(path)
    # a fresh start and run id are offered; the saved ones win, since the feed is the same
    state = again.resume_or_start(SETTINGS, int(START.timestamp()) + 86_400, "run-b")
    assert (state.run_id, state.start, state.resumes) == ("run-a", int(START.timestamp()), 1)
    assert again.batch_prefix == "run-a.r1" and again.skipping
    rest = _records(_feed(state.run_id), again, 12)
    for bank, ids in everything.items():
        assert rest.get(bank, []) == ids[answered[bank] :], bank
    assert not again.skipping


def test_batch_ids_of_a_resumed_feed_differ_from_the_first_run(tmp_path):
    path = tmp_path / "cursor.json"
    FeedCursor(path).resume_or_start(SETTINGS, int(START.timestamp()), "run-a")
    cursor = FeedCursor(path)
    cursor.resume_or_start(SETTINGS, int(START.timestamp()), "run-a")
    feed = _feed("run-a")
    feed.batch_prefix = cursor.batch_prefix
    batch = next(feed.batches(feed.advance(6 * 3600)))
    assert batch["batch_id"].startswith("run-a.r1-")


def test_a_cursor_of_another_feed_or_an_unreadable_one_starts_afresh(tmp_path):
    path = tmp_path / "cursor.json"
    old = FeedCursor(path)
    old.resume_or_start(SETTINGS, int(START.timestamp()), "run-a")
    old.answered("B001", 100)
    other = FeedSettings(seed=5, institutions=8, intensity=4000.0, demo=True)
    fresh = FeedCursor(path)
    state = fresh.resume_or_start(other, 123, "run-b")
    assert (state.run_id, state.start, state.answered, state.resumes) == ("run-b", 123, {}, 0)
    path.write_text("{not json")
    state = FeedCursor(path).resume_or_start(SETTINGS, 456, "run-c")
    assert (state.run_id, state.start) == ("run-c", 456)


def test_the_demo_plan_injects_every_typology_early_on_a_few_institutions():
    from models.findings import TYPOLOGIES
    from services.simulator.demo import DEMO_SEED, demo_institutions, demo_plan
    from services.simulator.push import HISTORY_DAYS

    province = build_province(DEMO_SEED, 24, as_of=START.date())
    plan = demo_plan(DEMO_SEED)(province)
    assert plan.skipped == ()
    positives = [inj for inj in plan.injections if inj.kind == "positive"]
    # anomaly is learned, not injected by a rule's variant
    assert {inj.typology for inj in positives} == set(TYPOLOGIES) - {"anomaly"}
    assert all(inj.kind == "positive" for inj in plan.injections)  # no hard negatives in the demo
    assert {inj.institution_id for inj in plan.injections} <= set(demo_institutions(province))
    assert len(demo_institutions(province)) <= 14
    begin = int(START.timestamp())
    assert all(begin <= t < begin + HISTORY_DAYS * 86_400 for inj in plan.injections for t in inj.times)
