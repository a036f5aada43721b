"""A ClickHouse server as a plain child process on free loopback ports in a directory of its own:
what the benchmark's production-shape phase and the tests run against (Debian's
`clickhouse-server` package, installed by `make test-deps`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from services.broker import die_with_parent, free_port

SYSTEM_CONFIG = "/etc/clickhouse-server/config.xml"


def clickhouse_server_binary() -> str | None:
    """The installed `clickhouse-server`, or None."""
    return shutil.which("clickhouse-server") or (
        "/usr/sbin/clickhouse-server" if os.path.exists("/usr/sbin/clickhouse-server") else None
    )


class LocalClickHouse:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.interserver_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"clickhouse://default:@127.0.0.1:{self.tcp_port}/fundwatch"

    def start(self, timeout_s: float = 60.0) -> LocalClickHouse:
        binary = clickhouse_server_binary()
        if binary is None:
            raise RuntimeError("clickhouse-server is not installed (`make test-deps` installs it)")
        for sub in ("data", "tmp", "user_files", "format_schemas"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        args = [
            binary, f"--config-file={SYSTEM_CONFIG}", "--",
            f"--path={self.root / 'data'}/", f"--tmp_path={self.root / 'tmp'}/",
            f"--user_files_path={self.root / 'user_files'}/", f"--format_schema_path={self.root / 'format_schemas'}/",
            f"--tcp_port={self.tcp_port}", f"--http_port={self.http_port}",
            f"--interserver_http_port={self.interserver_port}", "--listen_host=127.0.0.1",
            f"--logger.log={self.root / 'server.log'}", f"--logger.errorlog={self.root / 'error.log'}",
            "--logger.level=warning",
        ]  # fmt: skip
        with open(self.root / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=die_with_parent
            )
        from clickhouse_driver import Client

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                tail = (self.root / "stderr.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"clickhouse-server exited: {tail}")
            try:
                Client("127.0.0.1", port=self.tcp_port, connect_timeout=1).execute("SELECT 1")
                return self
            except Exception:  # not listening yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"clickhouse-server did not answer within {timeout_s:.0f} s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
