"""services/evaluation.py with the direct engine: one simulated province, scored per variant."""

from __future__ import annotations

import json

from services.evaluation import markdown_variants, run_eval
from services.simulator.variants import VARIANTS


def test_every_variant_is_scored_on_the_same_province_and_truth(tmp_path):
    seen = []
    results = run_eval(
        5, 30.0, institutions=7, work_dir=tmp_path, keep=True, progress=False,
        variants=[VARIANTS["baseline"], VARIANTS["sparse"], VARIANTS["bank-by-bank"]], engine="direct",
        on_result=seen.append, intensity=500.0,
    )  # fmt: skip
    assert [r.variant for r in results] == ["baseline", "sparse", "bank-by-bank"] and seen == results
    assert len({(r.labels, r.records) for r in results}) == 1 and results[0].records > 500
    for result in results:
        assert result.engine == "direct" and result.scores["large_value"].labels > 0
        assert result.hard_negatives_flagged == 0
        json.dumps(result.to_builtins())
    text = markdown_variants(results)
    assert "#### sparse" in text and "| typology |" in text
    assert (tmp_path / "province" / "labels.jsonl").exists()
