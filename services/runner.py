"""How the pieces start: the embedded stack (`fundwatch run`) and the production-shape processes
(`fundwatch worker`, `fundwatch gateway`, `fundwatch dispatcher`).

Every process opens storage and applies migrations first, so it fails at start, with the reason,
rather than at its first write. The embedded stack keeps everything that touches chDB in this one
process: chDB allows a single owner of its data directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
import mode
from aiohttp import web

from schemas.messages import INSTITUTION_TOPIC, RECORDS_TOPIC
from services import collector, secret_box
from services.auth import TokenStore, resolve_admin_token
from services.broker import EmbeddedBroker
from services.config import Settings
from services.gateway.api import Gateway
from services.gil import hand_over_often
from services.kafka_io import Publisher, ensure_topics
from services.logs import setup_logging
from services.storage import migrate, open_storage
from services.storage.async_storage import AsyncStorage
from services.webhooks.dispatcher import DispatchConfig, Dispatcher
from services.webhooks.policy import RetryPolicy
from streams.app import WorkerApp, create_worker_app

log = logging.getLogger("fundwatch.runner")


class Worker(faust.Worker):
    """Faust's worker with FundWatch's logging instead of its own."""

    def __init__(
        self,
        *args: Any,
        settings: Settings,
        before_stop: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._settings = settings
        self._before_stop = before_stop
        super().__init__(*args, quiet=True, redirect_stdouts=False, **kwargs)

    def _setup_logging(self) -> None:
        setup_logging(self._settings.log_level, self._settings.log_format)

    async def on_stop(self) -> None:
        _stop_deadline(STOP_DEADLINE_S)
        # Runs before any child stops: the consumer is still up to finish what the API accepted.
        if self._before_stop is not None:
            await self._before_stop()
        await super().on_stop()


# Draining takes at most 30 s; the rest of a stop is closing connections. A broker that is gone
# can hold those closes for ever (its clients keep retrying), so a stop that takes longer than
# this ends the process: what was accepted and not processed stays in Kafka or is re-sent.
STOP_DEADLINE_S = 90.0


def _stop_deadline(seconds: float) -> None:
    def expire() -> None:
        log.error("stop did not finish within %.0f s (broker or storage unreachable); exiting", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


class GatewayWorker(mode.Worker):
    """mode's worker for a process without Faust agents, with FundWatch's logging."""

    def __init__(self, *services: mode.Service, settings: Settings, **kwargs: Any) -> None:
        self._settings = settings
        super().__init__(*services, quiet=True, redirect_stdouts=False, **kwargs)

    def _setup_logging(self) -> None:
        setup_logging(self._settings.log_level, self._settings.log_format)

    async def on_stop(self) -> None:
        _stop_deadline(STOP_DEADLINE_S)
        await super().on_stop()


class ApiService(mode.Service):
    """Serves the gateway's aiohttp application inside the worker's event loop."""

    def __init__(
        self,
        gateway: Gateway,
        host: str,
        port: int,
        drain: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gateway = gateway
        self.drain = drain
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.ready = asyncio.Event()

    async def on_start(self) -> None:
        await self.gateway.publisher.start()
        await self.gateway.load()
        # A client still sending a refused body must not hold the shutdown for aiohttp's default minute.
        self._runner = web.AppRunner(self.gateway.application(), access_log=None, shutdown_timeout=3.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.ready.set()
        _listening("api", self._runner, self.host, self.port)
        _listening("console", self._runner, self.host, self.port)  # GET /: desks sign in with a token

    async def close_and_drain(self) -> None:
        """Stop taking requests, then wait for the pipeline to finish what was accepted."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        drain, self.drain = self.drain, None
        if drain is not None:
            await drain()

    async def on_stop(self) -> None:
        await self.close_and_drain()
        await self.gateway.publisher.stop()


class ProbeService(mode.Service):
    """/healthz, /readyz and /metrics for a process without the API (a worker)."""

    def __init__(self, host: str, port: int, ready: Callable[[], Awaitable[bool]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.ready = ready
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        from services.exposition import metrics_page

        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def readyz(request: web.Request) -> web.Response:
            ok = await self.ready()
            return web.json_response({"status": "ready" if ok else "not_ready"}, status=200 if ok else 503)

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics_page)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=3.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        _listening("probes", self._runner, self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _listening(what: str, runner: web.AppRunner, host: str, port: int) -> None:
    """Say where this process listens, in the log and on stdout: each process kind has a default
    port of its own, and port 0 lets the system choose one."""
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("%s listening url=http://%s:%d", what, host, bound)
    print(f"fundwatch {what} listening on http://{host}:{bound}", flush=True)


class BrokerWatch(mode.Service):
    """Stops the embedded stack if its broker child dies: nothing can be accepted or processed
    without it, and a stack that looks alive but is not would be worse than one that stopped."""

    def __init__(self, broker: EmbeddedBroker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broker = broker
        self.lost = False

    @mode.Service.timer(1.0)
    async def _check(self) -> None:
        code = self.broker.exit_code()
        if code is not None and not self.lost:
            self.lost = True
            log.error("the embedded broker exited code=%s; stopping the stack", code)
            _exit_if_stuck(15.0)
            os.kill(os.getpid(), signal.SIGTERM)


def _exit_if_stuck(after_s: float) -> None:
    """Leave the process after ``after_s`` even if a shutdown step hangs (a client waiting on a
    broker that is gone)."""

    def leave() -> None:
        log.error("shutdown did not finish within %.0f s; exiting", after_s)
        os._exit(1)

    timer = threading.Timer(after_s, leave)
    timer.daemon = True
    timer.start()


class SimulatorService(mode.Service):
    """The built-in feed of `make run`: a synthetic province pushed through the real HTTP API."""

    def __init__(self, api: ApiService, admin_token: str, data_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api = api
        self.admin_token = admin_token
        self.data_dir = data_dir
        self._stop = asyncio.Event()

    async def on_started(self) -> None:
        self.add_future(self._feed())

    async def _feed(self) -> None:
        from services.simulator import run_simulation
        from services.simulator.cursor import FeedCursor
        from services.simulator.demo import DEMO_RATE, DEMO_SEED, DEMO_SIM_DAY_S, demo_plan

        await self.api.ready.wait()
        url = f"http://{self.api.host}:{self.api.port}"
        here = self.data_dir / "simulator"
        try:
            # Every typology injected in the first simulated days, which pass in minutes; a
            # restart on the same data dir resumes the feed (cursor.json) instead of repeating it.
            stats = await run_simulation(
                url,
                self.admin_token,
                progress=sys.stderr.isatty(),
                stop=self._stop,
                seed=DEMO_SEED,
                rate=DEMO_RATE,
                sim_day_s=DEMO_SIM_DAY_S,
                violations=demo_plan(DEMO_SEED, here / "demo-plan.json"),
                cursor=FeedCursor(here / "cursor.json"),
                demo=True,
            )
            log.info("simulator finished pushed=%d accepted=%d", stats.pushed, stats.accepted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("simulator stopped on an error; the stack keeps running")

    async def halt(self) -> None:
        """Stop pushing and wait for the pushes in flight, so none is cut off mid-request."""
        self._stop.set()
        for future in list(self._futures):
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout=10.0)
            except (TimeoutError, asyncio.CancelledError, Exception):  # its outcome is logged by _feed
                pass

    async def on_stop(self) -> None:
        self._stop.set()


def _prepare(settings: Settings, bootstrap: str) -> AsyncStorage:
    """Storage migrated and topics present: what every process needs before it serves. Its
    modules are loaded by then: the collector freezes them and takes the process's thresholds."""
    storage = open_and_migrate(settings)
    try:
        asyncio.run(ensure_topics(bootstrap, settings.partitions))
    except BaseException:
        storage.close()
        raise
    collector.settle(settings.gc_thresholds)
    collector.freeze_survivors()
    return storage


def _execute(worker: mode.Worker) -> int:
    """Run a mode/Faust worker until it stops; its exit code."""
    hand_over_often()  # services/gil.py: its storage and Kafka threads wait less for the lock
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def _external_bootstrap(settings: Settings, command: str) -> str:
    if not settings.kafka_bootstrap:
        raise SystemExit(
            f"fundwatch {command} needs FUNDWATCH_KAFKA_BOOTSTRAP (host:port of the Kafka cluster)"
        )
    return settings.kafka_bootstrap


def open_and_migrate(settings: Settings) -> AsyncStorage:
    storage = open_storage(settings.clickhouse_url)
    applied = migrate(storage)
    log.info(
        "storage ready backend=%s version=%s migrations_applied=%s",
        storage.kind,
        storage.version(),
        applied or "none",
    )
    return AsyncStorage(storage)


def admin_token_for(settings: Settings) -> str:
    token, generated = resolve_admin_token(settings.admin_token, settings.data_dir)
    if generated:
        print(f"Admin token (also written to {settings.data_dir / 'admin-token'}):\n  {token}", flush=True)
    elif not settings.admin_token:
        print(f"Admin token: see {settings.data_dir / 'admin-token'}", flush=True)
    return token


def _gateway(
    settings: Settings, storage: AsyncStorage, bootstrap: str, admin_token: str, checks: dict
) -> Gateway:
    tokens = TokenStore(storage)
    tokens.bootstrap_admin(admin_token)
    gateway = Gateway(
        storage,
        Publisher(bootstrap),
        tokens,
        settings.partitions,
        extra_checks=checks,
        allow_private_webhooks=settings.webhook_allow_private,
    )
    gateway.intake.max_future_s = settings.max_future_s
    return gateway


def _dispatcher(settings: Settings, storage: AsyncStorage, bootstrap: str) -> Dispatcher:
    config = DispatchConfig(
        retry=RetryPolicy(base_s=settings.webhook_retry_base_s, window_s=settings.webhook_retry_window_s),
        allow_private=settings.webhook_allow_private,
        timeout_s=settings.webhook_timeout_s,
        concurrency=settings.webhook_concurrency,
        notify_interval_s=settings.notify_interval_s,
    )
    return Dispatcher(storage, bootstrap, config, group_id=f"{settings.app_id}-dispatcher")


def _drain(gateway: Gateway, worker: WorkerApp, timeout_s: float = 30.0) -> Callable[[], Awaitable[None]]:
    """Wait until the in-process worker has handled every message this gateway published.

    The embedded broker forgets everything when it stops, so records accepted but not yet
    processed would be lost; a clean stop lets the worker finish them first.
    """

    async def drain() -> None:
        deadline = time.monotonic() + timeout_s
        target = gateway.publisher.acknowledged.get(RECORDS_TOPIC, 0)
        while worker.processor.messages_handled < target and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # then what the records agent and the gateway's product reviews sent on by institution
        while (
            worker.institutions.messages_handled
            < worker.processor.institution_messages_sent
            + gateway.publisher.acknowledged.get(INSTITUTION_TOPIC, 0)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        await worker.flush_snapshots()
        left = target - worker.processor.messages_handled
        if left > 0:
            log.warning("stopping with unprocessed messages=%d after waiting %.0f s", left, timeout_s)
        else:
            log.info("drained: every accepted record is processed messages=%d", target)

    return drain


def run_embedded(settings: Settings, simulator: bool = True) -> int:
    """`fundwatch run`: broker child, chDB, workers, API (and the simulator) in one process."""
    setup_logging(settings.log_level, settings.log_format)
    data_dir_lock(settings.data_dir)
    # the webhook secrets' key: FUNDWATCH_SECRET_KEY, else one kept in the data dir
    secret_box.install(secret_box.resolve(settings.secret_key, settings.data_dir, "run"))
    log.info("starting embedded stack %s", settings.describe())
    broker = None
    storage = None
    try:
        if settings.kafka_bootstrap:
            bootstrap = settings.kafka_bootstrap
        else:
            broker = EmbeddedBroker(settings.data_dir / "broker.log")
            bootstrap = broker.start()
        storage = _prepare(settings, bootstrap)
        admin_token = admin_token_for(settings)
        worker = create_worker_app(
            settings.app_id, bootstrap, settings.partitions, storage, settings.data_dir / "faust",
            settings.max_future_s, settings.models_dir, settings.commit_interval_s,
        )  # fmt: skip
        dispatcher = _dispatcher(settings, storage, bootstrap)

        async def dispatcher_ready() -> bool:
            return dispatcher.ready.is_set()

        gateway = _gateway(
            settings,
            storage,
            bootstrap,
            admin_token,
            {"workers": worker.ready, "dispatcher": dispatcher_ready},
        )
        api = ApiService(gateway, settings.http_host, settings.http_port, drain=_drain(gateway, worker))
        services: list[mode.Service] = [*worker.services(), dispatcher, api]
        watch = BrokerWatch(broker) if broker is not None else None
        if watch is not None:
            services.append(watch)
        feed = SimulatorService(api, admin_token, settings.data_dir) if simulator else None
        if feed is not None:
            services.append(feed)

        async def before_stop() -> None:
            if feed is not None:
                await feed.halt()
            if watch is not None and watch.lost:
                api.drain = None  # nothing left to drain: the broker took it with it
            await api.close_and_drain()

        return _execute(
            Worker(
                worker.app,
                *services,
                settings=settings,
                before_stop=before_stop,
                loop=asyncio.new_event_loop(),
            )
        )
    finally:
        if storage is not None:
            storage.close()
        if broker is not None:
            broker.stop()


def run_worker(settings: Settings) -> int:
    """`fundwatch worker`: Faust workers against an external Kafka and ClickHouse."""
    setup_logging(settings.log_level, settings.log_format)
    bootstrap = _external_bootstrap(settings, "worker")
    storage = _prepare(settings, bootstrap)
    try:
        worker = create_worker_app(
            settings.app_id, bootstrap, settings.partitions, storage, settings.data_dir / "faust",
            settings.max_future_s, settings.models_dir, settings.commit_interval_s,
        )  # fmt: skip
        probes = ProbeService(settings.http_host, settings.http_port, worker.ready)
        return _execute(
            Worker(
                worker.app,
                *worker.services(),
                probes,
                settings=settings,
                before_stop=worker.flush_snapshots,
                loop=asyncio.new_event_loop(),
            )
        )
    finally:
        storage.close()


def run_gateway(settings: Settings) -> int:
    """`fundwatch gateway`: the HTTP API against an external Kafka and ClickHouse."""
    setup_logging(settings.log_level, settings.log_format)
    bootstrap = _external_bootstrap(settings, "gateway")
    # never made here: a gateway and a dispatcher each with its own key could not read each other's
    secret_box.install(secret_box.resolve(settings.secret_key, None, "gateway"))
    storage = _prepare(settings, bootstrap)
    try:
        gateway = _gateway(settings, storage, bootstrap, admin_token_for(settings), {})
        api = ApiService(gateway, settings.http_host, settings.http_port)
        return _execute(GatewayWorker(api, settings=settings, loop=asyncio.new_event_loop()))
    finally:
        storage.close()


def run_dispatcher(settings: Settings) -> int:
    """`fundwatch dispatcher`: webhook delivery against an external Kafka and ClickHouse."""
    setup_logging(settings.log_level, settings.log_format)
    bootstrap = _external_bootstrap(settings, "dispatcher")
    secret_box.install(secret_box.resolve(settings.secret_key, None, "dispatcher"))
    storage = _prepare(settings, bootstrap)
    try:
        dispatcher = _dispatcher(settings, storage, bootstrap)

        async def ready() -> bool:
            return dispatcher.ready.is_set()

        probes = ProbeService(settings.http_host, settings.http_port, ready)
        return _execute(GatewayWorker(dispatcher, probes, settings=settings, loop=asyncio.new_event_loop()))
    finally:
        storage.close()


def data_dir_lock(path: Path) -> None:
    """Refuse a second `fundwatch run` on the same data dir: chDB allows one owner."""
    import fcntl

    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / ".lock", "w")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit(
            f"another fundwatch process is using {path}; stop it or pick another --data-dir"
        ) from None
    _held_locks.append(handle)


_held_locks: list[Any] = []
