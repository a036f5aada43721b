"""Thresholds: a versioned file, overrides per institution type and by environment."""

from __future__ import annotations

import pytest

from models.findings import TYPOLOGIES
from models.thresholds import ThresholdError, load_thresholds


def test_the_shipped_file_has_a_version_and_every_typology():
    thresholds = load_thresholds({})
    assert thresholds.version
    assert set(thresholds.defaults) == set(TYPOLOGIES)
    assert thresholds.get("anomaly")["threshold_quantile"] == "p99.5"


def test_large_value_lines_are_the_pboc_reporting_lines():
    lines = load_thresholds({}).get("large_value")
    assert lines == {
        "cash": "50000.00",
        "non_natural_transfer": "2000000.00",
        "natural_transfer": "500000.00",
        "natural_cross_border": "200000.00",
        "far_multiple": "10",
    }


def test_institution_type_overrides_apply_to_that_type_only():
    thresholds = load_thresholds({})
    assert thresholds.get("misappropriation", "payment")["fee_share_max"] == "0.02"
    assert thresholds.get("misappropriation", "p2p_lending")["fee_share_max"] == "0.05"
    assert thresholds.get("misappropriation", None)["fee_share_max"] == "0.05"


def test_environment_overrides_one_value_and_mark_the_version():
    thresholds = load_thresholds({"FUNDWATCH_THRESHOLD__large_value__cash": "60000.00",
                                  "FUNDWATCH_THRESHOLD__fund_pool__min_distinct_in": "25"})  # fmt: skip
    assert thresholds.get("large_value")["cash"] == "60000.00"
    assert thresholds.get("fund_pool")["min_distinct_in"] == 25
    assert thresholds.version.endswith("+env:fund_pool.min_distinct_in,large_value.cash")


def test_bad_overrides_name_the_variable():
    with pytest.raises(ThresholdError, match="FUNDWATCH_THRESHOLD__fund_pool__min_distinct_in"):
        load_thresholds({"FUNDWATCH_THRESHOLD__fund_pool__min_distinct_in": "many"})
    with pytest.raises(ThresholdError, match="names no threshold"):
        load_thresholds({"FUNDWATCH_THRESHOLD__large_value__gold": "1"})


def test_a_whole_other_file(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('version = "test-1"\n[large_value]\ncash = "1.00"\n', encoding="utf-8")
    thresholds = load_thresholds({"FUNDWATCH_THRESHOLDS_FILE": str(path)})
    assert thresholds.version == "test-1" and thresholds.get("large_value") == {"cash": "1.00"}
    path.write_text("[large_value]\n", encoding="utf-8")
    with pytest.raises(ThresholdError, match="version"):
        load_thresholds({"FUNDWATCH_THRESHOLDS_FILE": str(path)})
