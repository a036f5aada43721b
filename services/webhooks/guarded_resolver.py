"""The HTTP client's name resolution, through the SSRF guard: the addresses a connection is made
to are the addresses that were checked, so a name that changes between the check and the connect
(DNS rebinding) cannot steer a delivery to a refused address."""

from __future__ import annotations

import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from services.webhooks.ssrf import Resolver, resolve_and_check


class GuardedResolver(AbstractResolver):
    def __init__(self, allow_private: bool, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        # aiohttp hands names here; literal addresses were judged before the request was made.
        addresses = await resolve_and_check(f"http://{host}:{port or 80}/", self.allow_private, self.resolver)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None
