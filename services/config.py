"""The one settings object, read once from the environment at the entry point.

Every variable has a default that works on a laptop; the secret is hidden when printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from services.collector import DEFAULT_THRESHOLDS, Thresholds, parse_thresholds


class ConfigError(ValueError):
    """A setting has a value that cannot work; the message names the variable."""


# Each process kind listens on a port of its own by default, so the production shape fits on one
# host: the API where the contract puts it, the worker's and the dispatcher's probes beside it.
# FUNDWATCH_HTTP_PORT (or --http-port) overrides it for any of them.
DEFAULT_HTTP_PORTS = {"run": 8080, "gateway": 8080, "worker": 8081, "dispatcher": 8082}
# A worker's commit interval: below a tenth of a second commits would be most of its work; above a
# minute a killed worker would replay a minute of records and the consumer lag would read a
# minute behind.
MIN_COMMIT_INTERVAL_S = 0.1
MAX_COMMIT_INTERVAL_S = 60.0


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: dict[str, str], name: str, default: float, low: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
    return value


def _thresholds(env: dict[str, str], name: str) -> Thresholds:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return DEFAULT_THRESHOLDS
    try:
        return parse_thresholds(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be {error}") from None


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./var")
    kafka_bootstrap: str = ""  # empty: the embedded broker of `fundwatch run`
    clickhouse_url: str = "chdb://./var/chdb"
    admin_token: str = field(default="", repr=False)
    # base64 of 32 bytes; encrypts webhook secrets at rest (services/secret_box.py)
    secret_key: str = field(default="", repr=False)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    partitions: int = 4
    webhook_retry_base_s: float = 5.0
    # How long a message is retried before it is dead-lettered (the contract asks for at least a day).
    webhook_retry_window_s: float = 86400.0
    webhook_timeout_s: float = 10.0
    webhook_concurrency: int = 4  # requests in flight per subscription
    webhook_allow_private: bool = False
    # A subscriber hears of a change of an alert's figures alone at most once per this many
    # seconds, with the newest revision (CONTRACT.md §5; Alertmanager's group_interval).
    notify_interval_s: float = 300.0
    log_level: str = "INFO"
    log_format: str = "text"
    app_id: str = "fundwatch"
    # How long a worker may hold records before writing them to ClickHouse: the bound on how stale
    # the aggregates may be, and the lever for bigger, cheaper inserts.
    flush_interval_s: float = 0.5
    # How often a worker commits: every state changed since the last commit goes to its table's
    # changelog, whole, then the offsets (streams/app.py CommitHook). A live worker touches most
    # accounts within a second, so each commit writes most states again; the interval is what a
    # killed worker replays at most (docs/benchmarks.md, 2026-12-07 14:00 UTC).
    commit_interval_s: float = 3.0
    # How far after the gateway's clock a record's booked_at or as_of may lie (CONTRACT.md §2):
    # banks' clocks drift, but a record dated days ahead is a wrong date.
    max_future_s: int = 3600
    # Trained models (FUNDWATCH_MODEL_DIR; None: <data-dir>/models): the anomaly artefacts and
    # their CURRENT are in its anomaly/, where `fundwatch train` writes and workers look.
    model_dir: Path | None = None
    # The cyclic garbage collector's thresholds for the long-running processes (services/collector.py).
    gc_thresholds: Thresholds = DEFAULT_THRESHOLDS

    @property
    def models_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.data_dir / "models"

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, process: str = "run", **overrides: object
    ) -> Settings:
        """The settings of a ``process`` kind (``run``, ``gateway``, ``worker``, ``dispatcher``;
        the default HTTP port depends on it) from ``env``, ``overrides`` (not None) winning."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("FUNDWATCH_DATA_DIR") or "./var")
        settings = cls(
            data_dir=data_dir,
            kafka_bootstrap=env.get("FUNDWATCH_KAFKA_BOOTSTRAP", ""),
            clickhouse_url=env.get("FUNDWATCH_CLICKHOUSE_URL") or "",
            admin_token=env.get("FUNDWATCH_ADMIN_TOKEN", ""),
            secret_key=env.get("FUNDWATCH_SECRET_KEY", ""),
            http_host=env.get("FUNDWATCH_HTTP_HOST") or "127.0.0.1",
            http_port=_int(env, "FUNDWATCH_HTTP_PORT", DEFAULT_HTTP_PORTS.get(process, 8080), 0, 65535),
            partitions=_int(env, "FUNDWATCH_PARTITIONS", 4, 1, 1024),
            webhook_retry_base_s=_float(env, "FUNDWATCH_WEBHOOK_RETRY_BASE_S", 5.0, 0.01),
            webhook_retry_window_s=_float(env, "FUNDWATCH_WEBHOOK_RETRY_WINDOW_S", 86400.0, 1.0),
            webhook_timeout_s=_float(env, "FUNDWATCH_WEBHOOK_TIMEOUT_S", 10.0, 0.1),
            webhook_concurrency=_int(env, "FUNDWATCH_WEBHOOK_CONCURRENCY", 4, 1, 64),
            webhook_allow_private=_flag(env, "FUNDWATCH_WEBHOOK_ALLOW_PRIVATE", False),
            notify_interval_s=_float(env, "FUNDWATCH_NOTIFY_INTERVAL_S", 300.0, 0.0),
            log_level=(env.get("FUNDWATCH_LOG_LEVEL") or "INFO").upper(),
            log_format=(env.get("FUNDWATCH_LOG_FORMAT") or "text").lower(),
            app_id=env.get("FUNDWATCH_APP_ID") or "fundwatch",
            flush_interval_s=_float(env, "FUNDWATCH_FLUSH_INTERVAL_S", 0.5, 0.01),
            commit_interval_s=_float(env, "FUNDWATCH_COMMIT_INTERVAL_S", 3.0, MIN_COMMIT_INTERVAL_S),
            max_future_s=_int(env, "FUNDWATCH_MAX_FUTURE_S", 3600, 0, 366 * 86400),
            model_dir=Path(env["FUNDWATCH_MODEL_DIR"]) if env.get("FUNDWATCH_MODEL_DIR") else None,
            gc_thresholds=_thresholds(env, "FUNDWATCH_GC_THRESHOLDS"),
        )
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        if not settings.clickhouse_url:
            settings = replace(settings, clickhouse_url=f"chdb://{settings.data_dir / 'chdb'}")
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(
                f"FUNDWATCH_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}"
            )
        if self.log_format not in {"text", "json"}:
            raise ConfigError(f"FUNDWATCH_LOG_FORMAT must be text or json, got {self.log_format!r}")
        if not self.clickhouse_url.startswith(("chdb://", "clickhouse://", "clickhouses://")):
            raise ConfigError("FUNDWATCH_CLICKHOUSE_URL must start with clickhouse:// or chdb://")
        if not 0 <= self.http_port <= 65535:  # a flag is checked here; the variable when it is read
            raise ConfigError(f"FUNDWATCH_HTTP_PORT must be between 0 and 65535, got {self.http_port}")
        if not 0 <= self.max_future_s <= 366 * 86400:
            raise ConfigError(
                f"FUNDWATCH_MAX_FUTURE_S must be between 0 and {366 * 86400}, got {self.max_future_s}"
            )
        if not MIN_COMMIT_INTERVAL_S <= self.commit_interval_s <= MAX_COMMIT_INTERVAL_S:  # also refuses nan
            raise ConfigError(
                f"FUNDWATCH_COMMIT_INTERVAL_S must be between {MIN_COMMIT_INTERVAL_S} and "
                f"{MAX_COMMIT_INTERVAL_S} seconds, got {self.commit_interval_s}"
            )
        if not self.notify_interval_s >= 0:  # the flag; also refuses nan
            raise ConfigError(f"FUNDWATCH_NOTIFY_INTERVAL_S must be at least 0, got {self.notify_interval_s}")

    def describe(self) -> str:
        """One line for the start-up log, secrets hidden."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("admin_token", "secret_key"):
                value = "(set)" if value else "(generated)"
            elif f.name == "clickhouse_url" and "@" in str(value):
                scheme, _, rest = str(value).partition("://")
                value = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
            shown.append(f"{f.name}={value}")
        return " ".join(shown)
