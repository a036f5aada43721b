"""The FundWatch processes a benchmark runs, as child processes of their own: the same commands
an operator starts, so their figures (rate, peak memory) are the real processes' figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from services.broker import die_with_parent, free_port
from services.children import wait_http_ready
from services.simulator.push import parse_metric_total


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time the process has used so far, user and system, all its threads; None once gone."""
    if pid is None:
        return None
    try:
        # the fields after the command name, whose parentheses may hold spaces: utime and stime
        # are the 14th and 15th fields of the line
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


COLLECTOR = "worker_collector"  # the worker's garbage-collector pauses, within its CPU


class CpuWindow:
    """The CPU time processes used between two moments (``begin``, ``end``): what a rate alone
    does not say on a machine shared with other work, where wall time moves with the load and CPU
    time far less."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.started: dict[str, float | None] = {}
        self.used: dict[str, float] = {}
        self.counts = (0.0, 0.0)  # what was done (records processed) at the two moments

    def begin(self, count: float, collector_s: float | None = None) -> None:
        """``collector_s``: the worker's time in its garbage collector so far
        (``fundwatch_gc_pause_seconds_total``), when it was read: part of its CPU, shown apart."""
        self.started = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.started[COLLECTOR] = collector_s
        self.counts = (count, count)

    def end(self, count: float, collector_s: float | None = None) -> None:
        for name, pid in self.pids.items():
            now, then = cpu_seconds(pid), self.started.get(name)
            if now is not None and then is not None:
                self.used[name] = now - then
        then = self.started.get(COLLECTOR)
        if collector_s is not None and then is not None:
            self.used[COLLECTOR] = collector_s - then
        self.counts = (self.counts[0], count)

    def us_per_item(self) -> dict[str, float]:
        """µs of CPU per item done in between, of each process."""
        done = self.counts[1] - self.counts[0]
        return (
            {name: round(seconds / done * 1e6, 1) for name, seconds in self.used.items()} if done > 0 else {}
        )


def peak_rss_mb(pid: int) -> float | None:
    """The most resident memory the process has had (VmHWM), in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


class Child:
    """``fundwatch <command>`` with its own environment, port and log file."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "FUNDWATCH_HTTP_PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.peak_rss_mb: float | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *self.command],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C at the bench's terminal reaches the bench alone
            preexec_fn=die_with_parent,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def sample_rss(self) -> float | None:
        if self.process is not None and self.process.poll() is None:
            value = peak_rss_mb(self.process.pid)
            if value is not None:
                self.peak_rss_mb = max(self.peak_rss_mb or 0.0, value)
        return self.peak_rss_mb

    async def wait_ready(self, session: aiohttp.ClientSession, timeout_s: float = 120.0) -> None:
        await wait_http_ready(
            session, self.base, self.process, f"fundwatch {self.command[0]} (log: {self.log_path})", timeout_s
        )

    async def metric(self, session: aiohttp.ClientSession, name: str) -> float:
        return (await self.metrics(session, name))[name]

    async def metrics(self, session: aiohttp.ClientSession, *names: str) -> dict[str, float]:
        """The totals of the named metrics (sample names) in one request that asks the process
        for those alone: the bench polls while it measures, and a whole scrape would cost the
        process it measures several milliseconds each time."""
        params = [("name[]", name) for name in names]
        async with session.get(self.base + "/metrics", params=params) as resp:
            text = await resp.text()
        return {name: parse_metric_total(text, name) for name in names}

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.process is None:
            return None
        self.sample_rss()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
