"""models/trace.py: the look-through walk over a plain function of edges."""

from __future__ import annotations

from models.trace import EdgeSum, NodeFacts, walk


def graph(*edges: tuple[str, str, int], unmonitored: frozenset[str] = frozenset()):
    """edges_of and facts over a list of (source, target, cents); every account is monitored
    unless named in ``unmonitored``. Records which accounts were asked for, by hop."""
    asked: list[list[str]] = []

    def edges_of(accounts: list[str]) -> list[EdgeSum]:
        asked.append(sorted(accounts))
        return [
            EdgeSum(s, t, c, 1, "2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z")
            for s, t, c in edges
            if s in accounts
        ]

    def facts(accounts: list[str]) -> dict[str, NodeFacts]:
        return {a: NodeFacts(a not in unmonitored, "INS", "other") for a in accounts}

    return edges_of, facts, asked


def by_pair(trace) -> dict[tuple[str, str], tuple[str, int]]:
    return {(e.from_, e.to): (e.amount, e.hop) for e in trace.edges}


def terminal(trace) -> dict[str, str | None]:
    return {n.account_id: n.terminal for n in trace.node_views()}


def test_a_chain_is_followed_hop_by_hop_to_its_final_uses():
    edges_of, facts, asked = graph(("C", "M1", 100_00), ("C", "M2", 50_00), ("M1", "P1", 60_00),
                                   ("M1", "P2", 40_00), ("M2", "P3", 50_00))  # fmt: skip
    trace = walk("C", edges_of, facts, hops=3, fan_out=10)
    assert by_pair(trace) == {
        ("C", "M1"): ("100.00", 1), ("C", "M2"): ("50.00", 1),
        ("M1", "P1"): ("60.00", 2), ("M1", "P2"): ("40.00", 2), ("M2", "P3"): ("50.00", 2),
    }  # fmt: skip
    assert terminal(trace) == {"C": None, "M1": None, "M2": None, "P1": "final_use", "P2": "final_use",
                               "P3": "final_use"}  # fmt: skip
    assert asked == [["C"], ["M1", "M2"], ["P1", "P2", "P3"]]
    assert {n.account_id: n.hop for n in trace.node_views()} == {"C": 0, "M1": 1, "M2": 1, "P1": 2, "P2": 2, "P3": 2}


def test_a_cycle_ends_and_is_marked():
    edges_of, facts, asked = graph(("A", "B", 10_00), ("B", "C", 9_00), ("C", "A", 8_00))
    trace = walk("A", edges_of, facts, hops=6, fan_out=10)
    assert by_pair(trace) == {("A", "B"): ("10.00", 1), ("B", "C"): ("9.00", 2), ("C", "A"): ("8.00", 3)}
    assert [e.closes_cycle for e in trace.edges] == [False, False, True]
    assert terminal(trace)["C"] == "cycle"
    assert asked == [["A"], ["B"], ["C"]]  # A is not asked for again
    assert any("already traced" in en and "资金回流" in zh for en, zh in trace.notes())


def test_a_self_transfer_and_a_cross_edge_are_not_cycles_or_followed_twice():
    edges_of, facts, asked = graph(("A", "A", 5_00), ("A", "B", 10_00), ("A", "C", 10_00), ("B", "D", 1_00),
                                   ("C", "D", 2_00), ("C", "B", 3_00))  # fmt: skip
    trace = walk("A", edges_of, facts, hops=5, fan_out=10)
    assert ("A", "A") not in by_pair(trace)
    assert by_pair(trace)[("C", "B")] == ("3.00", 2)
    assert not any(e.closes_cycle for e in trace.edges)  # B is a sibling of C, not its ancestor
    assert asked == [["A"], ["B", "C"], ["D"]]


def test_fan_out_keeps_the_largest_edges_and_counts_the_rest():
    edges = [("A", f"P{i:02d}", (i + 1) * 100) for i in range(12)]
    edges_of, facts, _ = graph(*edges)
    trace = walk("A", edges_of, facts, hops=2, fan_out=5)
    assert sorted(e.to for e in trace.edges) == ["P07", "P08", "P09", "P10", "P11"]
    root = next(n for n in trace.node_views() if n.account_id == "A")
    left = sum((i + 1) * 100 for i in range(7))
    assert (root.edges_left_out, root.amount_left_out) == (7, f"{left // 100}.{left % 100:02d}")
    assert any("fan-out capped at 5" in en and "7 edges" in en and "7 条去向" in zh for en, zh in trace.notes())


def test_the_hop_limit_stops_the_walk_and_says_so():
    edges_of, facts, asked = graph(("A", "B", 100), ("B", "C", 100), ("C", "D", 100), ("D", "E", 100))
    trace = walk("A", edges_of, facts, hops=2, fan_out=10)
    assert by_pair(trace) == {("A", "B"): ("1.00", 1), ("B", "C"): ("1.00", 2)}
    assert terminal(trace)["C"] == "hop_limit"
    assert asked == [["A"], ["B"]]
    assert ("stopped after 2 hops", "追踪 2 层后停止") in trace.notes()


def test_accounts_without_records_are_not_followed():
    edges_of, facts, asked = graph(("A", "X", 100), ("X", "Y", 100), unmonitored=frozenset({"X"}))
    trace = walk("A", edges_of, facts, hops=3, fan_out=10)
    assert terminal(trace)["X"] == "not_monitored"
    assert "Y" not in terminal(trace)
    assert asked == [["A"]]


def test_an_unmonitored_root_is_terminal_at_once():
    edges_of, facts, asked = graph(("A", "B", 100), unmonitored=frozenset({"A"}))
    trace = walk("A", edges_of, facts, hops=3, fan_out=10)
    assert trace.edges == [] and terminal(trace) == {"A": "not_monitored"} and asked == []


def test_accounts_outside_the_region_are_not_followed():
    edges_of, _, asked = graph(("A", "F", 100), ("F", "G", 100))

    def facts(accounts):
        return {a: NodeFacts(True, None, None, outside=(a == "F")) for a in accounts}

    trace = walk("A", edges_of, facts, hops=3, fan_out=10)
    assert terminal(trace) == {"A": None, "F": "outside_region"} and asked == [["A"]]
