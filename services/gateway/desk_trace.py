"""GET /v1/trace (穿透, DOMAIN.md): where money leaving an account went, hop by hop, from the raw
records in ClickHouse. The walk and its bounds are models/trace.py's; this module reads the edges
of each hop (the payer's own debit records, one currency) and the facts of the accounts reached.

A desk traces from accounts of its region (404 otherwise, as for an unknown account) and sees that
money went to an account of another region's institution, but does not follow it there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from models.trace import EdgeSum, NodeFacts, TraceWalk
from schemas.desk import MAX_HOPS, Trace, TraceQuery
from services.auth import Principal
from services.gateway.desk_scope import day_or_time, desk_scope, iso, not_found
from services.gateway.desk_store import DeskStore
from services.gateway.errors import ApiError, parse_query

DEFAULT_DAYS = 90


class DeskTrace:
    def __init__(self, store: DeskStore) -> None:
        self.store = store

    async def trace(self, principal: Principal, query: Mapping[str, str]) -> Trace:
        scope = desk_scope(principal, "traces")
        ask = parse_query(query, TraceQuery)
        until = day_or_time(ask.until) if ask.until else datetime.now(UTC)
        since = day_or_time(ask.since) if ask.since else until - timedelta(days=DEFAULT_DAYS)
        if since >= until:
            raise ApiError(422, "invalid_query", "`since`: must be before `until`", "since")
        root = ask.account_id
        facts, regions = await self._facts([root], scope)
        _, registered = await self.store.account_region(root)
        if not facts[root].monitored and not registered:
            raise not_found("account")  # neither registered nor any record of it
        # the institution's region as the reference data has it now, else as its records carried it
        if scope and not (registered or regions.get(root, "")).startswith(scope):
            raise not_found("account")
        root_facts = NodeFacts(facts[root].monitored, facts[root].institution_id, facts[root].role)
        hops = min(ask.hops, MAX_HOPS)
        walk = TraceWalk(root, root_facts, hops, ask.fan_out)
        while frontier := walk.frontier():
            rows = await self.store.outgoing(frontier, since, until, ask.currency)
            edges = [EdgeSum(a, c, cents, n, iso(first), iso(last)) for a, c, cents, n, first, last in rows]
            reached = sorted({e.target for e in _largest(edges, ask.fan_out)} - set(walk.nodes))
            known, _ = await self._facts(reached, scope)
            walk.advance(edges, lambda accounts, known=known: {a: known[a] for a in accounts if a in known})
        notes = walk.notes()
        if ask.hops > MAX_HOPS:
            notes.insert(0, (f"hops capped at {MAX_HOPS} (asked for {ask.hops})", f"最多追踪 {MAX_HOPS} 层（请求 {ask.hops} 层）"))
        notes.append((
            "amounts follow the payer's own debit records, per counterparty, in the window",
            "金额按付款账户自身的借方记录、按对手方汇总，限于所选时间段",
        ))  # fmt: skip
        return Trace(
            account_id=root, currency=ask.currency, since=iso(since), until=iso(until), hops=hops,
            hops_requested=ask.hops, fan_out=ask.fan_out, edges=walk.edges, nodes=walk.node_views(),
            notes=[en for en, _ in notes], notes_zh=[zh for _, zh in notes],
        )  # fmt: skip

    async def _facts(self, accounts: list[str], scope: str) -> tuple[dict[str, NodeFacts], dict[str, str]]:
        """What the records say of each account, and the region they carried."""
        held = await self.store.monitored(accounts)
        found: dict[str, NodeFacts] = {}
        for account in accounts:
            if account not in held:
                found[account] = NodeFacts(monitored=False)
                continue
            institution, role, region = held[account]
            # an account with no region is no institution's: nothing of another region is shown
            outside = bool(scope and region and not region.startswith(scope))
            found[account] = NodeFacts(
                monitored=True, institution_id=None if outside else (institution or None),
                role=None if outside else (role or None), outside=outside,
            )  # fmt: skip
        return found, {a: held[a][2] for a in held}


def _largest(edges: list[EdgeSum], fan_out: int) -> list[EdgeSum]:
    """The edges the walk will keep (the largest per account): only their targets are looked up."""
    by_source: dict[str, list[EdgeSum]] = {}
    for edge in edges:
        if edge.source != edge.target and edge.cents > 0:  # as the walk keeps them
            by_source.setdefault(edge.source, []).append(edge)
    return [e for out in by_source.values() for e in sorted(out, key=lambda e: (-e.cents, e.target))[:fan_out]]
