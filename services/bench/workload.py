"""What every phase of a benchmark run pushes: one simulated province's reference data and custody
batches, made once so that each phase handles the same records.

The province's normal activity is what the detectors see all day (fees, investments, payouts,
clearing legs, balances, the large-value reports institutions raise routinely). ``probe_batches``
adds, for the latency phase, one large credit a batch on a probe custody account, each on a
Beijing day of its own, so each raises one new large_value alert whose evidence names exactly
that record: its push time is the start of the latency that ends at the webhook.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec

from services.simulator import build_province, write_files
from services.simulator.push import REFERENCE_ORDER

# Records one province of the default size makes per simulated day (seen: about 67,000).
RECORDS_PER_DAY = 67_000
PROBE_FIRST_DAY = date(2025, 1, 1)


@dataclass
class Workload:
    institutions: int
    accounts: int
    reference: dict[str, list[dict]]
    # (bank code, batch body as sent over HTTP, records in it), in push order
    batches: list[tuple[str, bytes, int]]

    @property
    def records(self) -> int:
        return sum(n for _, _, n in self.batches)

    @property
    def banks(self) -> list[str]:
        return sorted({bank for bank, _, _ in self.batches})


def build_workload(seed: int, institutions: int, records: int, batch_records: int = 5_000) -> Workload:
    """About ``records`` records of a province of ``institutions`` (whole batches; the last ones
    beyond the count are left out), in batches of ``batch_records``."""
    province = build_province(seed, institutions)
    days = max(1, -(-records * 11 // (RECORDS_PER_DAY * 10)))  # whole days: nights are quiet
    while True:
        reference, per_bank = _write(province, seed, days * 24.0, batch_records)
        if (
            sum(len(msgspec.json.decode(line)["records"]) for lines in per_bank.values() for line in lines)
            >= records
        ):
            break
        days += 1
    batches: list[tuple[str, bytes, int]] = []
    total = 0
    # Interleave the banks, as their pushes interleave during a day.
    for round_ in range(max(len(lines) for lines in per_bank.values())):
        for bank, lines in per_bank.items():
            if round_ < len(lines) and total < records:
                body = lines[round_]
                count = len(msgspec.json.decode(body)["records"])
                batches.append((bank, body, count))
                total += count
    return Workload(institutions, len(reference["accounts"]), reference, batches)


def _write(
    province: Any, seed: int, hours: float, batch_records: int
) -> tuple[dict[str, list[dict]], dict[str, list[bytes]]]:
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        out = Path(tmp)
        write_files(province, out, hours=hours, seed=seed, batch_records=batch_records)
        reference = {
            kind: msgspec.json.decode((out / "reference" / f"{kind}.json").read_bytes())
            for kind in REFERENCE_ORDER
        }
        per_bank = {
            path.stem: [line for line in path.read_bytes().splitlines() if line.strip()]
            for path in sorted((out / "batches").glob("*.jsonl"))
        }
    return reference, per_bank


def probe_account(bank: str) -> str:
    return f"BENCH-PROBE-{bank}"


def probe_reference(workload: Workload) -> dict[str, list[dict]]:
    """One probe account per bank: a custody account of the province's first custody institution,
    held at that bank, so each bank's batches can carry probes of its own."""
    custody = next(a for a in workload.reference["accounts"] if a["role"] == "customer_custody")
    return {
        "accounts": [
            {**custody, "account_id": probe_account(bank), "bank_code": bank, "product_id": None}
            for bank in workload.banks
        ]
    }


def probe_record(bank: str, number: int) -> dict:
    day = PROBE_FIRST_DAY + timedelta(days=number)
    return {
        "kind": "transaction", "record_id": f"bench-probe-{bank}-{number}", "account_id": probe_account(bank),
        "direction": "credit", "amount": "2600000.00", "currency": "CNY",
        "booked_at": f"{day.isoformat()}T10:00:00+08:00", "counterparty_account": f"62280000{number:011d}",
        "counterparty_bank": "B901", "channel": "HVPS",
    }  # fmt: skip


@dataclass
class ProbeBatch:
    bank: str
    body: bytes
    records: int
    probe_id: str


def probe_batches(workload: Workload, batch_records: int) -> list[ProbeBatch]:
    """The workload cut into batches of ``batch_records`` with one probe record each, in order."""
    out: list[ProbeBatch] = []
    numbers = dict.fromkeys(workload.banks, 0)
    for bank, body, _ in workload.batches:
        batch = msgspec.json.decode(body)
        records = batch["records"]
        for part, start in enumerate(range(0, len(records), batch_records)):
            probe = probe_record(bank, numbers[bank])
            numbers[bank] += 1
            chunk = [*records[start : start + batch_records], probe]
            sub = {"batch_id": f"{batch['batch_id']}-{part}", "bank_code": bank, "records": chunk}
            out.append(ProbeBatch(bank, msgspec.json.encode(sub), len(chunk), probe["record_id"]))
    return out
