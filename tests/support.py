"""Helpers the integration and end-to-end tests share: free ports, real servers, HTTP calls."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from services.storage import local_server

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(
    method: str,
    url: str,
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """One HTTP call; returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode("utf-8"))
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode("utf-8", "replace")


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def wait_ready(base: str, timeout: float = 90.0, process: subprocess.Popen | None = None) -> None:
    def ready() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before it was ready")
        try:
            status, _ = call("GET", f"{base}/readyz", timeout=5)
        except OSError:
            return False
        return status == 200

    wait_until(ready, timeout, what=f"{base}/readyz")


def promtool() -> str:
    """Prometheus' checker, from the Debian package `prometheus` (`make test-deps`)."""
    found = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    if found is None:
        import pytest

        pytest.fail("promtool is missing: `make test-deps` installs the Debian package prometheus")
    return found


# Debian's clickhouse-server as a plain process on free ports in a temporary folder; start()
# fails naming the package when it is missing
ClickHouseServer = local_server.LocalClickHouse


class FundwatchProcess:
    """`fundwatch <command>` as a child process, its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *self.args], cwd=REPO, env=self.env,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a terminal gives a command
        )  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(
                    f"fundwatch {self.args[0]} did not stop within {timeout:.0f} s"
                ) from None
        return self.process.returncode

    def kill(self) -> None:
        """Teardown of last resort: whatever a failed test left running goes, with its group."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
