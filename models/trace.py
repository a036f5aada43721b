"""Look-through tracing (穿透, DOMAIN.md): where money leaving an account went, hop by hop.

Pure. A walk is breadth-first over the accounts money reached: at each hop the caller fetches the
outgoing edges of the accounts on the frontier (from the raw records in storage) and hands them
to ``TraceWalk.advance``; ``walk`` does the same over a plain function, for tests and replay.

Bounded three ways, and each says so: an account already in the trace is not followed again (the
edge to it is kept, marked when it closes a cycle); at most ``fan_out`` edges per account, the
largest by amount (the rest counted on the account); at most ``hops`` hops. An account is only
followed when FundWatch holds its records (``monitored``): money leaving an account of another
bank that pushes nothing cannot be seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from schemas.desk import TraceEdge, TraceNode
from schemas.fields import cents_to_text


class EdgeSum(msgspec.Struct, frozen=True):
    """All money from one account to another in the window: one currency, in cents."""

    source: str
    target: str
    cents: int
    count: int
    first_at: str
    last_at: str


class NodeFacts(msgspec.Struct, frozen=True):
    """What storage knows of an account."""

    monitored: bool
    institution_id: str | None = None
    role: str | None = None
    # an account of an institution outside the caller's region: a desk sees that money went
    # there, not what that institution did with it
    outside: bool = False


class _Node(msgspec.Struct):
    account_id: str
    hop: int
    facts: NodeFacts
    ancestors: frozenset[str]
    terminal: str | None = None
    left_out: int = 0
    left_out_cents: int = 0


class TraceWalk:
    def __init__(self, root: str, root_facts: NodeFacts, hops: int, fan_out: int) -> None:
        self.hops = hops
        self.fan_out = fan_out
        self.nodes: dict[str, _Node] = {root: _Node(root, 0, root_facts, frozenset())}
        self.edges: list[TraceEdge] = []
        self._frontier: list[str] = [root] if root_facts.monitored else []
        self._hop = 0
        if not root_facts.monitored:
            self.nodes[root].terminal = "not_monitored"

    def frontier(self) -> list[str]:
        """The accounts whose outgoing edges the next hop needs; empty when the walk is done."""
        return list(self._frontier) if self._hop < self.hops else []

    def advance(self, edges: Iterable[EdgeSum], facts: Callable[[list[str]], dict[str, NodeFacts]]) -> None:
        """One hop: ``edges`` out of the frontier's accounts (others are ignored), and ``facts``
        to look up the accounts first reached by them."""
        frontier = self.frontier()
        if not frontier:
            return
        self._hop += 1
        by_source: dict[str, list[EdgeSum]] = {source: [] for source in frontier}
        for edge in edges:
            if edge.source in by_source and edge.source != edge.target and edge.cents > 0:
                by_source[edge.source].append(edge)
        kept: list[EdgeSum] = []
        for source in frontier:
            outgoing = sorted(by_source[source], key=lambda e: (-e.cents, e.target))
            node = self.nodes[source]
            node.left_out = max(0, len(outgoing) - self.fan_out)
            node.left_out_cents = sum(e.cents for e in outgoing[self.fan_out :])
            kept += outgoing[: self.fan_out]
            if not outgoing:
                node.terminal = "final_use"  # money stops here: nothing left it in the window
        new = sorted({e.target for e in kept if e.target not in self.nodes})
        known = facts(new) if new else {}
        reached: list[str] = []
        for edge in kept:
            source = self.nodes[edge.source]
            target = self.nodes.get(edge.target)
            closes = target is not None and (edge.target in source.ancestors or edge.target == source.account_id)
            if target is None:
                target = _Node(edge.target, self._hop, known.get(edge.target, NodeFacts(False)),
                               source.ancestors | {source.account_id})  # fmt: skip
                self.nodes[edge.target] = target
                reached.append(edge.target)
            elif target.hop == self._hop:
                # reached again in the same hop by another account: it has two routes in
                target.ancestors = target.ancestors | source.ancestors | {source.account_id}
            self.edges.append(_edge(edge, self._hop, closes))
        for source in frontier:
            outgoing = [e for e in kept if e.source == source]
            if outgoing and all(e.target in self.nodes[source].ancestors for e in outgoing):
                self.nodes[source].terminal = "cycle"  # every route out of it leads back
        self._frontier = []
        for account in reached:
            node = self.nodes[account]
            if node.facts.outside:
                node.terminal = "outside_region"
            elif not node.facts.monitored:
                node.terminal = "not_monitored"
            elif self._hop >= self.hops:
                node.terminal = "hop_limit"
            else:
                self._frontier.append(account)

    def node_views(self) -> list[TraceNode]:
        return [
            TraceNode(
                account_id=n.account_id, hop=n.hop, monitored=n.facts.monitored,
                institution_id=n.facts.institution_id, role=n.facts.role, terminal=n.terminal,  # type: ignore[arg-type]
                edges_left_out=n.left_out, amount_left_out=cents_to_text(n.left_out_cents),
            )
            for n in sorted(self.nodes.values(), key=lambda n: (n.hop, n.account_id))
        ]  # fmt: skip

    def notes(self) -> list[tuple[str, str]]:
        """What the walk left out and why, each as (English, Chinese)."""
        said: list[tuple[str, str]] = []
        cut = [n for n in self.nodes.values() if n.left_out]
        if cut:
            edges, amount = sum(n.left_out for n in cut), cents_to_text(sum(n.left_out_cents for n in cut))
            said.append((
                f"fan-out capped at {self.fan_out} edges per account: {edges} edges ({amount}) of "
                f"{len(cut)} accounts not followed",
                f"每个账户最多展开 {self.fan_out} 条去向：{len(cut)} 个账户的 {edges} 条去向（{amount} 元）未继续追踪",
            ))  # fmt: skip
        cycles = sum(1 for e in self.edges if e.closes_cycle)
        if cycles:
            said.append((
                f"{cycles} edges lead back to an account already traced: not followed again",
                f"{cycles} 条去向回到已追踪的账户（资金回流），不再重复追踪",
            ))  # fmt: skip
        if any(n.terminal == "hop_limit" for n in self.nodes.values()):
            said.append((f"stopped after {self.hops} hops", f"追踪 {self.hops} 层后停止"))
        if any(n.terminal == "not_monitored" for n in self.nodes.values()):
            said.append((
                "accounts whose records FundWatch does not hold cannot be followed (not_monitored)",
                "未报送记录的账户无法继续追踪（监测范围外）",
            ))  # fmt: skip
        if any(n.terminal == "outside_region" for n in self.nodes.values()):
            said.append((
                "accounts of institutions outside your region are not followed (outside_region)",
                "辖区外机构的账户不继续追踪",
            ))  # fmt: skip
        return said


def _edge(edge: EdgeSum, hop: int, closes: bool) -> TraceEdge:
    return TraceEdge(
        from_=edge.source, to=edge.target, amount=cents_to_text(edge.cents), count=edge.count,
        first_at=edge.first_at, last_at=edge.last_at, hop=hop, closes_cycle=closes,
    )  # fmt: skip


def walk(
    root: str,
    edges_of: Callable[[list[str]], Iterable[EdgeSum]],
    facts: Callable[[list[str]], dict[str, NodeFacts]],
    hops: int,
    fan_out: int,
) -> TraceWalk:
    """The whole walk over plain functions: ``edges_of(accounts)`` gives the edges out of them."""
    trace = TraceWalk(root, facts([root]).get(root, NodeFacts(False)), hops, fan_out)
    while frontier := trace.frontier():
        trace.advance(edges_of(frontier), facts)
    return trace
