"""models/detectors/peer_yields.py: a product's lines against its peers, kept with the group."""

from __future__ import annotations

from decimal import Decimal

from models.detectors import product_flows as pf
from models.detectors.figures import fraction_of
from models.detectors.peer_yields import Peers, product_lines
from tests.unit.test_detectors_excess_return import product

CFG = {"robust_z": "3.5", "lpr_one_year": "0.030", "lpr_multiple": 4, "min_peers": 5}


def _group() -> list[dict]:
    return [product(f"PRD-{i}", declared=f"0.0{70 + i}") for i in range(6)]


def test_product_lines_are_the_rule_lines_of_its_reference_data():
    group = _group()
    peers = Peers(group)
    for item in (
        *group,
        product("PRD-HI", declared="0.150"),
        product("PRD-NONE", declared=None, project=None),
    ):
        lines = product_lines(CFG, "0.5", peers, item)
        declared = pf.rate_of(item["declared_annual_yield"])
        project = pf.rate_of(item["underlying_project_rate"])
        assert lines.declared == declared and lines.project == project
        assert lines.legal_cap == fraction_of("0.030") * 4 == lines.lpr * lines.multiple
        assert lines.over_project == (declared is not None and project is not None and declared > project)
        assert lines.over_cap == (declared is not None and declared > Decimal("0.12"))
        assert lines.z == (peers.z(declared, 5) if declared is not None else None)
        assert lines.outlier == (lines.z is not None and lines.z > fraction_of("3.5"))
        assert lines.split == pf.is_split(item, fraction_of("0.5"))
    assert product_lines(CFG, "0.5", peers, product("PRD-HI", declared="0.150")).over_cap


def test_a_groups_lines_are_kept_per_product_thresholds_and_term_line():
    group = _group()
    peers = Peers(group)
    item = product("PRD-SPLIT", term=30, underlying=360)
    first = peers.lines(CFG, "0.5", item)
    assert first == product_lines(CFG, "0.5", peers, item) and peers.lines(CFG, "0.5", item) is first
    assert first.split and not peers.lines(CFG, "0.05", item).split
    other_cfg = {**CFG, "lpr_multiple": 1}
    assert peers.lines(other_cfg, "0.5", item).legal_cap == fraction_of("0.030")
    again = dict(item, declared_annual_yield="0.500")  # another product object: read anew
    assert peers.lines(CFG, "0.5", again).declared == Decimal("0.500")
