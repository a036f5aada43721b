"""Helpers the integration and end-to-end tests share: free ports, real servers, HTTP calls."""

from __future__ import annotations

import base64
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


class ProdStack:
    """The production shape on servers of its own: a Tansu broker, a clickhouse-server and
    `fundwatch gateway` / `worker` / `dispatcher` processes, each of which a test may kill and
    start again. A fresh ProdStack is a fresh database and fresh topics."""

    COMMANDS = ("gateway", "worker", "dispatcher")

    def __init__(
        self, root: Path, admin: str, commands: tuple[str, ...] = COMMANDS, env: dict[str, str] | None = None
    ) -> None:
        from services.broker import EmbeddedBroker

        self.root = root
        self.admin = admin
        self.commands = commands
        self.broker = EmbeddedBroker(root / "broker.log")
        self.clickhouse = ClickHouseServer(root / "clickhouse")
        self.ports = {name: free_port() for name in commands}
        self.base = f"http://127.0.0.1:{self.ports['gateway']}"
        self.app_id = f"fw-t-{os.urandom(4).hex()}"
        self.extra_env = env or {}
        self.processes: dict[str, FundwatchProcess] = {}
        self.starts: dict[str, int] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> ProdStack:
        bootstrap = self.broker.start()
        self.clickhouse.start()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")},
            "FUNDWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "FUNDWATCH_CLICKHOUSE_URL": self.clickhouse.url,
            "FUNDWATCH_ADMIN_TOKEN": self.admin,
            "FUNDWATCH_DATA_DIR": str(self.root),
            "FUNDWATCH_APP_ID": self.app_id,
            "FUNDWATCH_WEBHOOK_ALLOW_PRIVATE": "1",  # the tests' receivers listen on loopback
            # the key the gateway and the dispatcher share for the webhook secrets kept in ClickHouse
            "FUNDWATCH_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
            "FUNDWATCH_LOG_LEVEL": os.environ.get("FW_TEST_LOG_LEVEL", "INFO"),
            **self.extra_env,
        }
        for name in self.commands:
            self.start_process(name, wait=False)
        for name in self.commands:
            self.wait_ready(name)
        return self

    def start_process(self, name: str, wait: bool = True) -> FundwatchProcess:
        self.starts[name] = self.starts.get(name, 0) + 1
        process = FundwatchProcess(
            [name, "--http-port", str(self.ports[name])],
            self.env,
            self.root / f"{name}-{self.starts[name]}.log",
        )
        self.processes[name] = process
        process.start()
        if wait:
            self.wait_ready(name)
        return process

    def wait_ready(self, name: str, timeout: float = 120.0) -> None:
        wait_ready(self.url(name), timeout=timeout, process=self.processes[name].process)

    def kill(self, name: str) -> None:
        """SIGKILL to the process alone, as the kernel's OOM killer or a lost node would."""
        process = self.processes[name].process
        assert process is not None and process.poll() is None, f"fundwatch {name} is not running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    def committed_behind(self, dispatcher: bool = True) -> dict[str, int]:
        """Messages not yet committed by the worker group (records and institution topics) and the
        dispatcher group (alerts topic), per topic; asked of the broker without joining a group."""
        from kafka import KafkaConsumer, TopicPartition

        from schemas.messages import ALERTS_TOPIC, INSTITUTION_TOPIC, RECORDS_TOPIC

        behind: dict[str, int] = {}
        groups = {RECORDS_TOPIC: self.app_id, INSTITUTION_TOPIC: self.app_id,
                  ALERTS_TOPIC: f"{self.app_id}-dispatcher"}  # fmt: skip
        for topic, group in groups.items():
            if topic == ALERTS_TOPIC and not (dispatcher and "dispatcher" in self.commands):
                continue
            consumer = KafkaConsumer(
                bootstrap_servers=self.broker.bootstrap, group_id=group, enable_auto_commit=False
            )
            try:
                partitions = [
                    TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
                ]
                ends = consumer.end_offsets(partitions) if partitions else {}
                behind[topic] = sum(max(0, end - (consumer.committed(tp) or 0)) for tp, end in ends.items())
            finally:
                consumer.close()
        return behind

    def stop(self) -> None:
        try:
            for process in self.processes.values():
                try:
                    process.stop(timeout=30)
                except AssertionError:
                    pass  # killed after the timeout; the teardown goes on
        finally:
            for process in self.processes.values():
                process.kill()
            self.clickhouse.stop()
            self.broker.stop()


class SimulatedProvince:
    """`fundwatch run` with its built-in simulator feeding a synthetic province, its stdout and
    stderr in one log file, and a webhook receiver of its own. Tests that use it note in
    ``sensitive`` every secret and personal datum they hand it (tokens, webhook secrets, account
    numbers, holder names), so that the log privacy test can look for each in the log."""

    def __init__(self, root: Path) -> None:
        from tests.receivers import Receivers

        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin = "fw_admin_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        self.secret_key = base64.b64encode(os.urandom(32)).decode()
        self.sensitive: dict[str, set[str]] = {"tokens": {self.admin}, "secrets": {self.secret_key}}
        self.receivers = Receivers()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env.update(
            FUNDWATCH_ADMIN_TOKEN=self.admin,
            FUNDWATCH_SECRET_KEY=self.secret_key,
            FUNDWATCH_LOG_LEVEL="INFO",  # what an operator runs
        )
        self.process = FundwatchProcess(
            ["run", "--data-dir", str(root / "data"), "--http-port", str(self.port)], env, root / "run.log"
        )
        self.started_at = 0.0

    def note(self, kind: str, *values: str | None) -> None:
        self.sensitive.setdefault(kind, set()).update(v for v in values if v)

    def start(self) -> SimulatedProvince:
        self.receivers.start()
        self.started_at = time.monotonic()
        self.process.start()
        wait_ready(self.base, timeout=120, process=self.process.process)
        return self

    def token(self, body: dict[str, Any]) -> str:
        status, answer = call("POST", f"{self.base}/v1/admin/tokens", self.admin, body)
        assert status == 201, answer
        self.note("tokens", answer["token"])
        return answer["token"]

    def stop(self) -> None:
        try:
            if self.process.process is not None and self.process.process.poll() is None:
                self.process.stop(timeout=5)  # SIGTERM: the simulator stops, the workers drain
        except AssertionError:
            pass  # still draining after 5 s: killed, as nothing is checked after this
        finally:
            self.process.kill()
            self.receivers.stop()
