"""models/anomaly_sweep.py and its use by the in-process pipeline and the records agent: a silent
account's open day is judged once its own bank's event time has passed it, as if the account had
booked a record then; a record of the day that still comes judges it again."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from models.account_detection import step_account
from models.anomaly_serving import AnomalyModels
from models.anomaly_sweep import GRACE, SweepIndex, anomaly_state_of, sweep_due
from models.detectors import DetectContext
from schemas.messages import partition_for
from services.simulator.pipeline import InProcessPipeline
from streams.records import RecordsProcessor
from tests.unit.test_detectors_anomaly import (  # noqa: F401
    ODD,
    at,
    findings_of,
    history,
    pool_day,
    role_model,
    txn,
)
from tests.unit.test_detectors_common import CUSTODY, OWN, OWN_B, TEST_THRESHOLDS, references

KEY = f"{OWN}:{ODD.isoformat()}"
END = at(ODD + timedelta(days=1), 0)  # the end of the unusual day


@pytest.fixture(scope="module")
def ctx(role_model) -> DetectContext:  # noqa: F811
    model = AnomalyModels("anomaly-0123456789abcdef", "0123456789abcdef" * 4, {"own_operating": role_model})
    # OWN_B's bank is another one: slower than OWN's
    refs = references({OWN_B: {"bank_code": "B002"}})
    return DetectContext(refs, TEST_THRESHOLDS, anomaly_model=model)


def other(account: str, ts: int):
    """Another account's ordinary record: it moves its bank's event time in the partition."""
    return txn(account, True, 123_456, ts, "6217000100001234")


def anomaly_alerts(pipe: InProcessPipeline) -> dict[str, dict]:
    """The anomaly alerts' evidence by finding key (account:day)."""
    return {
        f"{a['accounts'][0]}:{a['evidence']['metrics']['day']}": a["evidence"]
        for a in pipe.latest().values()
        if a["typology"] == "anomaly"
    }


def day_key(alert) -> str:
    return f"{alert.accounts[0]}:{alert.evidence.metrics['day']}"


def evidence_of(finding) -> dict:
    return msgspec.to_builtins({"record_ids": sorted(finding.record_ids), "metrics": finding.metrics})


def shown(evidence: dict) -> dict:
    return {"record_ids": sorted(evidence["record_ids"]), "metrics": evidence["metrics"]}


def test_a_silent_accounts_day_is_judged_once_its_banks_time_passes_and_not_before(ctx):
    records = history() + pool_day(OWN, ODD)
    pipe = InProcessPipeline(ctx, partitions=1)
    pipe.push_message("B001", "B001/b1/0", records)
    pipe.push_message("B001", "B001/b2/0", [other(CUSTODY, END + GRACE - 1)])
    assert anomaly_alerts(pipe) == {}  # the bank's records of the day may still come
    pipe.push_message("B001", "B001/b3/0", [other(CUSTODY, END + GRACE)])
    alerts = anomaly_alerts(pipe)
    # the finding a record of the account at that time would have given
    _, on_time = findings_of(ctx, records + [txn(OWN, True, 1, END + GRACE, "62170")])
    assert list(alerts) == [KEY]
    assert shown(alerts[KEY]) == evidence_of(on_time[KEY])
    assert OWN not in pipe.sweeps[0] and CUSTODY in pipe.sweeps[0]  # its day is judged; the other's open
    pipe.push_message("B001", "B001/b4/0", [other(CUSTODY, END + 2 * GRACE)])
    assert len([e for e in pipe.events if e["typology"] == "anomaly"]) == 1  # judged once


def test_a_slow_banks_account_is_not_closed_by_a_fast_banks_time(ctx):
    pipe = InProcessPipeline(ctx, partitions=1)
    pipe.push_message("B001", "B001/b1/0", history() + pool_day(OWN, ODD))
    pipe.push_message("B002", "B002/b1/0", [other(OWN_B, END - 3600)])
    pipe.push_message("B002", "B002/b2/0", [other(OWN_B, END + 5 * GRACE)])  # another bank, far ahead
    assert KEY not in anomaly_alerts(pipe)
    pipe.push_message("B001", "B001/b2/0", [other(CUSTODY, END + GRACE)])  # OWN's bank
    assert KEY in anomaly_alerts(pipe)


def test_a_late_record_after_a_sweep_judges_the_day_again_as_if_on_time(ctx):
    odd, before = pool_day(OWN, ODD), history()
    closing = txn(OWN, True, 1, END + 3 * GRACE, "62170")
    _, on_time = findings_of(ctx, before + odd + [closing])
    pipe = InProcessPipeline(ctx, partitions=1)
    pipe.push_message("B001", "B001/b1/0", before + odd[:30])
    pipe.push_message("B001", "B001/b2/0", [other(CUSTODY, END + GRACE)])
    swept = anomaly_alerts(pipe)[KEY]
    pipe.push_message("B001", "B001/b3/0", odd[30:])  # the rest of the day, late
    again = anomaly_alerts(pipe)[KEY]
    assert again["metrics"] != swept["metrics"]
    assert shown(again) == evidence_of(on_time[KEY])


def test_an_account_that_books_on_a_later_day_is_not_swept_again(ctx):
    index = SweepIndex()
    state, _ = step_account(ctx, None, OWN, "m1", history() + pool_day(OWN, ODD), 0)
    index.track(OWN, "B001", anomaly_state_of(state))
    assert len(index) == 1 and OWN in index
    state, changed = step_account(ctx, state, OWN, "m2", [txn(OWN, True, 1, END + 60, "62170")], 0)
    assert [day_key(alert) for _, alert in changed if alert.typology == "anomaly"] == [
        KEY
    ]  # its own record closed it
    index.track(OWN, "B001", anomaly_state_of(state))  # the next day is open now
    index.observe("B001", [other(CUSTODY, END + GRACE)], None)
    assert index.due() == []  # END + 60's day is not over
    index.observe("B001", [other(CUSTODY, END + 86_400 + GRACE)], None)
    assert index.due() == [(OWN, "B001", END + 86_400 + GRACE)]


def test_bank_time_is_capped_by_the_ceiling_and_never_moves_back():
    index = SweepIndex()
    index.observe("B001", [other(CUSTODY, END)], ceiling=END - 10)
    assert index.bank_time == {"B001": END - 10}
    index.observe("B001", [other(CUSTODY, END - 100)], ceiling=None)
    assert index.bank_time == {"B001": END - 10}


class FakeTable:
    def __init__(self, data: dict) -> None:
        self.data = data

    def get(self, key):
        return self.data.get(key)


def test_the_worker_rebuilds_its_index_from_the_table_after_a_restart(ctx):
    state, _ = step_account(ctx, None, OWN, "m1", history() + pool_day(OWN, ODD), 0)
    processor = RecordsProcessor(
        None, ctx, ctx.references, FakeTable({OWN.encode(): state}), None, partitions=4
    )
    partition = partition_for(OWN, 4)
    index = processor._sweep_index(partition)
    assert OWN in index  # the open day is not forgotten
    index.observe("B001", [other(CUSTODY, END + GRACE)], None)
    touched: dict = {}
    [(account, new_state, changed)] = sweep_due(ctx, index, lambda a: processor._state_of(a, touched), 0)
    assert account == OWN and [day_key(alert) for _, alert in changed if alert.typology == "anomaly"] == [KEY]
    assert processor._sweep_index((partition + 1) % 4) is not index
    processor.forget_sweeps()
    assert processor.sweeps == {}
