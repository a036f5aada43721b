"""models/risk_index.py and models/screening.py: pure functions over plain inputs."""

from __future__ import annotations

import pytest

from models.risk_index import DEFAULT_FILE, RiskInputs, load_risk_config, risk_index
from models.screening import screen

CONFIG = load_risk_config(env={})
NOW = "2026-11-25T00:00:00Z"


def parts(index) -> dict[str, float]:
    return {c.name: c.value for c in index.components}


def test_nothing_known_is_zero_with_every_component_and_the_version():
    index = risk_index(RiskInputs(as_of=NOW), CONFIG)
    assert index.value == 0.0 and index.version == CONFIG.version
    assert list(parts(index)) == ["open_alerts", "custody_coverage", "growth", "history", "screening"]
    assert all(v == 0 for v in parts(index).values())
    assert {c.name: c.weight for c in index.components} == {
        "open_alerts": 0.30, "custody_coverage": 0.20, "growth": 0.15, "history": 0.25, "screening": 0.10,
    }  # fmt: skip


def test_everything_at_its_worst_is_100():
    inputs = RiskInputs(
        as_of=NOW, open_alerts={"misappropriation": {"critical": 2}}, custody_inflow_cents=0,
        other_inflow_cents=10_000_000_00, recent_inflow_cents=50_000_000_00, baseline_inflow_cents=8_000_000_00,
        history={"fund_pool": 3}, screening_hits=2,
    )  # fmt: skip
    index = risk_index(inputs, CONFIG)
    assert index.value == 100.0
    assert sum(c.points for c in index.components) == pytest.approx(100.0)


def test_open_alerts_weigh_by_severity_and_leave_large_value_reports_out():
    index = risk_index(
        RiskInputs(as_of=NOW, open_alerts={"fund_pool": {"high": 1, "medium": 1},
                                           "large_value": {"critical": 50}}),  # fmt: skip
        CONFIG,
    )
    component = index.components[0]
    assert component.inputs["severity_points"] == 6 and component.value == pytest.approx(6 / 16)
    assert component.points == pytest.approx(100 * 0.30 * 6 / 16, abs=0.01)
    assert index.value == pytest.approx(100 * 0.30 * 6 / 16, abs=0.051)  # one decimal


def test_custody_coverage_is_the_share_that_reached_custody():
    covered = risk_index(RiskInputs(as_of=NOW, custody_inflow_cents=900_000_00, other_inflow_cents=100_000_00), CONFIG)
    assert parts(covered)["custody_coverage"] == pytest.approx(0.1)
    assert covered.components[1].inputs["coverage"] == pytest.approx(0.9)
    # too little inflow to judge
    small = risk_index(RiskInputs(as_of=NOW, other_inflow_cents=5_000_00), CONFIG)
    assert parts(small)["custody_coverage"] == 0 and small.components[1].inputs["coverage"] is None


def test_growth_compares_the_recent_days_with_the_own_trend():
    # baseline 8 weeks of 1,000,000 a week; recent 7 days 2,500,000: ratio 2.5, (2.5-1)/(4-1) = 0.5
    index = risk_index(RiskInputs(as_of=NOW, recent_inflow_cents=2_500_000_00,
                                  baseline_inflow_cents=8_000_000_00), CONFIG)  # fmt: skip
    assert parts(index)["growth"] == pytest.approx(0.5)
    assert index.components[2].inputs["ratio"] == pytest.approx(2.5)
    flat = risk_index(RiskInputs(as_of=NOW, recent_inflow_cents=900_000_00, baseline_inflow_cents=8_000_000_00), CONFIG)
    assert parts(flat)["growth"] == 0
    new = risk_index(RiskInputs(as_of=NOW, recent_inflow_cents=9_000_000_00), CONFIG)
    assert parts(new)["growth"] == 0 and "no inflow in the baseline" in new.components[2].explanation


def test_history_counts_only_its_typologies():
    index = risk_index(RiskInputs(as_of=NOW, history={"misappropriation": 1, "large_value": 40}), CONFIG)
    assert parts(index)["history"] == pytest.approx(1 / 3, abs=1e-4)


def test_the_weights_come_from_a_versioned_file(tmp_path):
    text = CONFIG_FILE = tmp_path / "risk.toml"
    source = DEFAULT_FILE.read_text(encoding="utf-8")
    text.write_text(source.replace('version = "', 'version = "test-').replace("screening = 0.10", "screening = 0.0"))
    config = load_risk_config(env={"FUNDWATCH_RISK_INDEX_FILE": str(CONFIG_FILE)})
    index = risk_index(RiskInputs(as_of=NOW, screening_hits=5), config)
    assert index.version.startswith("test-") and index.value == 0.0
    text.write_text(source.replace("open_alerts = 0.30", "open_alerts = -1"))
    with pytest.raises(ValueError, match="weights"):
        load_risk_config(env={"FUNDWATCH_RISK_INDEX_FILE": str(CONFIG_FILE)})


def test_screening_finds_the_longest_phrases_in_name_and_scope():
    hits = screen("吉林某基金管理有限公司", "互联网金融信息服务; p2p 网络借贷")
    assert [(h.keyword, h.field) for h in hits] == [
        ("基金管理", "name"), ("互联网金融", "business_scope"), ("金融信息服务", "business_scope"),
        ("网络借贷", "business_scope"), ("P2P", "business_scope"),
    ]  # fmt: skip
    assert screen("长春某科技有限公司", "软件开发") == []
