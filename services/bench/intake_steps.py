"""The gateway's batch intake alone, in-process: CPU per record of ``parse_batch`` and
``BatchIntake.submit`` (envelope, per-record decode and rules, de-duplication, the records
messages, the answer) over the batches `fundwatch bench` pushes, with ClickHouse and the broker
replaced by lists in memory and no HTTP (docs/benchmarks.md, "The gateway's intake in-process").

    python -m services.bench.intake_steps [--seed 20261202] [--records 60000] [--repeat 5]
        [--profile out.prof]

Each repetition takes every batch into a fresh intake (its keys, answers and owners loaded with
the province's accounts, as a gateway that has the reference data); the median is reported.
``--profile`` runs one more repetition under cProfile and prints its top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from typing import Any

from services.auth import Principal
from services.bench.workload import build_workload
from services.gateway.intake import BatchIntake, parse_batch

# a bench run's batches: (bank code, body as sent)
Bodies = list[tuple[str, bytes]]


class MemoryStorage:
    """ClickHouse as the intake writes to it: inserts kept as counts, queries answered empty."""

    def __init__(self) -> None:
        self.rows = 0

    async def insert(self, table: str, columns: Any, rows: Any) -> int:
        self.rows += len(rows)
        return len(rows)

    async def insert_all(self, inserts: Any) -> list[int]:
        return [await self.insert(*insert) for insert in inserts]

    async def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        return []


class MemoryPublisher:
    def __init__(self) -> None:
        self.messages = 0

    async def send_all(self, messages: Any) -> None:
        self.messages += sum(1 for _ in messages)


def fresh_intake(owners: dict[str, str], partitions: int = 4) -> BatchIntake:
    intake = BatchIntake(MemoryStorage(), MemoryPublisher(), partitions)  # type: ignore[arg-type]
    for account_id, bank_code in owners.items():
        intake.owners.learn(account_id, bank_code)
    return intake


async def take_all(intake: BatchIntake, bodies: Bodies) -> None:
    for bank, body in bodies:
        await intake.submit(parse_batch(body, Principal("bench", "bank", bank)))


def time_intake(owners: dict[str, str], bodies: Bodies, repeat: int) -> tuple[list[float], list[float]]:
    """CPU and wall seconds of ``repeat`` fresh intakes taking every batch."""
    cpu_runs, wall_runs = [], []
    for _ in range(repeat):
        intake = fresh_intake(owners)
        wall, cpu = time.perf_counter(), time.process_time()
        asyncio.run(take_all(intake, bodies))
        cpu_runs.append(time.process_time() - cpu)
        wall_runs.append(time.perf_counter() - wall)
    return cpu_runs, wall_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--institutions", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile")
    args = parser.parse_args()
    workload = build_workload(args.seed, args.institutions, args.records)
    owners = {a["account_id"]: a["bank_code"] for a in workload.reference["accounts"]}
    bodies = [(bank, body) for bank, body, _ in workload.batches]
    cpu_runs, wall_runs = time_intake(owners, bodies, args.repeat)
    per = 1e6 / workload.records
    print(
        f"{workload.records:,} records, {len(bodies):,} batches, {args.repeat} runs: "
        f"CPU {statistics.median(cpu_runs) * per:.2f} µs/record (median), "
        f"wall {statistics.median(wall_runs) * per:.2f}; "
        f"CPU per run {', '.join(f'{s:.3f}' for s in cpu_runs)} s"
    )
    if args.profile:
        intake, profile = fresh_intake(owners), cProfile.Profile()
        profile.enable()
        asyncio.run(take_all(intake, bodies))
        profile.disable()
        profile.dump_stats(args.profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
