"""models/detectors/bucket_fold.py: add_all leaves a bucket exactly as add of each record would;
the shortcuts in common (top_entries of one bucket, score_of of ints) give the same answers."""

from __future__ import annotations

import random

import pytest

from models.detectors.bucket_fold import add_all
from models.detectors.common import TOP_N, add, new_bucket, top_entries
from schemas.messages import TxnRecord


def _records(rng: random.Random, n: int, start: int) -> list[TxnRecord]:
    return [
        TxnRecord(
            record_id=f"r{start + i:05d}",
            account_id="A",
            credit=rng.random() < 0.5,
            amount_cents=rng.choice([100, 5_000, 5_000, rng.randint(1, 10**8)]),
            booked_at=1_700_000_000 + rng.randint(0, 86_399),
            counterparty_account="C",
            counterparty_bank="B",
            channel="BEPS",
            currency="CNY",
            counterparty_name=None,
            instruction_id=None,
            purpose=None,
            product_id=None,
            balance_after_cents=None,
        )
        for i in range(n)
    ]


def _one_by_one(bucket, records, tags, top, late):
    for index, r in enumerate(records):
        tag = None if tags is None else tags[index]
        add(bucket, r.record_id, r.booked_at, r.amount_cents, tag=tag, top=top, late=late)


@pytest.mark.parametrize("seed", range(12))
def test_add_all_is_add_of_each_record(seed: int) -> None:
    rng = random.Random(seed)
    by_one, at_once = new_bucket(), new_bucket()
    start = 0
    for _ in range(rng.randint(1, 6)):  # several messages into the same bucket
        records = _records(rng, rng.choice([0, 1, 3, TOP_N - 1, TOP_N + 7, 3 * TOP_N]), start)
        start += len(records)
        tags = [rng.choice(["own", "related", "other"]) for _ in records] if seed % 3 else None
        top, late = seed % 4 != 1, rng.random() < 0.3
        _one_by_one(by_one, records, tags, top, late)
        add_all(at_once, records, tags=tags, top=top, late=late)
        assert at_once == by_one
        assert list(at_once) == list(by_one)  # the same keys in the same order
        assert list(at_once["x"]) == list(by_one["x"])


def test_add_all_of_nothing_changes_nothing() -> None:
    bucket = new_bucket()
    add_all(bucket, [], late=True)
    assert bucket == new_bucket()


def test_top_entries_of_one_bucket_as_of_several() -> None:
    rng = random.Random(7)
    one, other = new_bucket(), new_bucket()
    add_all(one, _records(rng, 3 * TOP_N, 0))
    add_all(other, [])
    assert top_entries([one]) == top_entries([one, other]) == top_entries(iter([one]))
    assert top_entries([one], 5) == top_entries([one, other], 5)


def test_score_of_as_the_exact_quotient() -> None:
    from fractions import Fraction

    from models.detectors.common import score_of

    rng = random.Random(3)
    for _ in range(2000):
        value = rng.randint(-(10**12), 10**13)
        scale = rng.choice([rng.randint(1, 10**12), Fraction(rng.randint(1, 10**9), rng.randint(1, 10**4))])
        expected = round(min(1.0, max(0.0, float(Fraction(value) / Fraction(scale)))), 4)
        assert score_of(value, scale) == expected


@pytest.mark.parametrize("seed", range(8))
def test_sort_by_rank_is_a_stable_sort_by_top_rank(seed: int) -> None:
    from models.detectors.bucket_fold import sort_by_rank
    from models.detectors.common import top_rank

    rng = random.Random(seed)
    entries = [
        [rng.choice([100, 5_000, rng.randint(1, 10**6)]), rng.choice([1, 2, 3]), rng.choice("abc"), tag]
        for tag in range(rng.randint(0, 3 * TOP_N))
    ]
    entries += [list(entry) for entry in entries[: len(entries) // 4]]  # entries of equal rank
    expected = sorted(entries, key=top_rank)
    sort_by_rank(entries)
    assert entries == expected
    assert [id(e) for e in entries] == [id(e) for e in expected]  # equal ranks keep their order
