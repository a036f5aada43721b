"""Waiting for a FundWatch child process (`fundwatch run`, `gateway`, `worker`) to be ready, as
`fundwatch eval` and `fundwatch bench` start them."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiohttp


async def wait_http_ready(
    session: aiohttp.ClientSession,
    base: str,
    process: subprocess.Popen | None,
    what: str,
    timeout_s: float,
    interval_s: float = 0.25,
) -> None:
    """Until ``base``/readyz answers 200; fail at once, naming ``what``, if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        try:
            async with session.get(base + "/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(interval_s)
    raise RuntimeError(f"{what} was not ready within {timeout_s:.0f} s")
