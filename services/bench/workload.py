"""What every phase of a benchmark run pushes: one simulated province's reference data and custody
batches, made once so that each phase handles the same records.

The province's normal activity is what the detectors see all day (fees, investments, payouts,
clearing legs, balances, the large-value reports institutions raise routinely). ``probe_batches``
adds, for the latency phase, one large credit a batch on a probe custody account, each on a
Beijing day of its own, so each raises one new large_value alert whose evidence names exactly
that record: its push time is the start of the latency that ends at the webhook.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

from services.simulator import build_province, write_files
from services.simulator.push import REFERENCE_ORDER

# Records one province of the default size makes per simulated day (seen: about 67,000).
RECORDS_PER_DAY = 67_000
PROBE_FIRST_DAY = date(2025, 1, 1)
BEIJING = timezone(timedelta(hours=8))
_FIRST_TIME = re.compile(rb'"(?:booked_at|as_of)"\s*:\s*"([^"]+)"')


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
    reference, per_bank = _write_enough(province, seed, days, records, batch_records)
    return Workload(institutions, len(reference["accounts"]), reference, _interleave(per_bank, records))


@dataclass
class AgedWorkload:
    """One province's simulated days cut in two: ``history`` (its first ``history_days`` days,
    whole) to be processed first, then ``measured`` (about as many records as asked, of the days
    after) as the backlog whose rate is measured."""

    history_days: int
    history: Workload
    measured: Workload
    # the Beijing days each part covers, in order
    history_dates: list[str]
    measured_dates: list[str]


def build_aged_workload(
    seed: int, institutions: int, history_days: int, records: int, batch_records: int = 5_000
) -> AgedWorkload:
    """The province of ``build_workload`` with the same seed, written for ``history_days`` days
    more than its ``records`` need: every batch of those first days is history, then about
    ``records`` records of the days that follow are measured (whole batches, the banks
    interleaved as they push). Every batch holds the records of one simulated hour, so of one
    Beijing day."""
    if history_days < 1:
        raise ValueError("history_days must be at least 1")
    province = build_province(seed, institutions)
    days = history_days + max(1, -(-records * 11 // (RECORDS_PER_DAY * 10)))
    reference, per_bank = _write_enough(province, seed, days, records, batch_records, history_days)
    early, later = _split_days(per_bank, history_days)
    accounts = len(reference["accounts"])
    history = Workload(institutions, accounts, reference, _interleave(early, None))
    measured = Workload(institutions, accounts, reference, _interleave(later, records))
    return AgedWorkload(history_days, history, measured, _dates(history), _dates(measured))


def _split_days(
    per_bank: dict[str, list[bytes]], days: int
) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
    """Each bank's batches of the first ``days`` Beijing days, and those of the days after."""
    starts = [batch_day(lines[0]) for lines in per_bank.values() if lines]
    if not starts:
        return {bank: [] for bank in per_bank}, {bank: [] for bank in per_bank}
    cut = (date.fromisoformat(min(starts)) + timedelta(days=days)).isoformat()
    early = {bank: [line for line in lines if batch_day(line) < cut] for bank, lines in per_bank.items()}
    later = {bank: [line for line in lines if batch_day(line) >= cut] for bank, lines in per_bank.items()}
    return early, later


def batch_day(body: bytes) -> str:
    """The Beijing day (YYYY-MM-DD) of a batch's first record. Its time is the first
    ``booked_at`` or ``as_of`` of the body (a quoted key cannot occur inside a JSON string), so a
    batch is not decoded whole for it."""
    found = _FIRST_TIME.search(body)
    if found is not None:
        moment = found.group(1).decode()
    else:
        first = msgspec.json.decode(body)["records"][0]
        moment = first.get("booked_at") or first["as_of"]
    return datetime.fromisoformat(moment).astimezone(BEIJING).date().isoformat()


def _dates(workload: Workload) -> list[str]:
    return sorted({batch_day(body) for _, body, _ in workload.batches})


def _count(lines: list[bytes]) -> int:
    return sum(len(msgspec.json.decode(line)["records"]) for line in lines)


def _write_enough(
    province: Any, seed: int, days: int, records: int, batch_records: int, skip_days: int = 0
) -> tuple[dict[str, list[dict]], dict[str, list[bytes]]]:
    """The reference data and each bank's batches of ``days`` simulated days, a day more each
    time until the days after the first ``skip_days`` hold at least ``records`` records."""
    while True:
        reference, per_bank = _write(province, seed, days * 24.0, batch_records)
        later = _split_days(per_bank, skip_days)[1] if skip_days else per_bank
        if _count([line for lines in later.values() for line in lines]) >= records:
            return reference, per_bank
        days += 1


def _interleave(per_bank: dict[str, list[bytes]], records: int | None) -> list[tuple[str, bytes, int]]:
    """The banks' batches interleaved, as their pushes interleave during a day, up to ``records``
    records (None: all of them)."""
    batches: list[tuple[str, bytes, int]] = []
    total = 0
    for round_ in range(max((len(lines) for lines in per_bank.values()), default=0)):
        for bank, lines in per_bank.items():
            if round_ < len(lines) and (records is None or total < records):
                body = lines[round_]
                count = len(msgspec.json.decode(body)["records"])
                batches.append((bank, body, count))
                total += count
    return batches


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
