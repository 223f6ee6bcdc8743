"""Real databases for every test: a SQLite file and a PostgreSQL server, each freshly migrated.

PostgreSQL is `WALLET_TEST_POSTGRES_URL` when set, else a throwaway server from `pgserver`.
Each test gets a database of its own on it, so tests never see each other's rows.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url

from tests.support import BACKENDS, FIXTURES, JWT_SECRET, cli_environment, new_database_url
from wallet.db import make_engine
from wallet.schema import upgrade
from wallet.settings import Settings
from wallet_api.main import create_app

# Prefect keeps its profile and local state here rather than in the home directory.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="wallet-prefect-home-")
# The test server has no one to report usage to.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


@pytest.fixture(scope="session")
def legacy_fixture_dir() -> Path:
    if not (FIXTURES / "expected.json").is_file():
        pytest.fail(f"the legacy-wallet fixture is missing at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The URL of a PostgreSQL server the tests may create databases on."""
    given = os.environ.get("WALLET_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    import pgserver

    data_dir = tempfile.mkdtemp(prefix="wallet-pg-")
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    url = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
    yield url.render_as_string(hide_password=False)
    server.cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    """An empty database on each backend in turn (the schema is not applied yet)."""
    return new_database_url(request, request.param, tmp_path)


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        var_dir=tmp_path / "var",
        _env_file=None,
    )


@pytest.fixture
def engine(settings) -> Iterator[Engine]:
    """An engine on a freshly migrated database."""
    engine = make_engine(settings.database_url, settings)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def cli_env(settings, tmp_path, prefect_api_url) -> dict[str, str]:
    """The environment for running the `wallet` command on this test's database."""
    return cli_environment(settings.database_url, tmp_path / "var", prefect_api_url)


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """One Prefect test server for the whole session; flows in this process report to it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield PREFECT_API_URL.value()


@pytest.fixture
def flow_engine(engine, settings, monkeypatch, prefect_api_url) -> Engine:
    """`engine`, also made the configured database of flows run in this process."""
    from wallet.db import get_engine
    from wallet.settings import get_settings

    monkeypatch.setenv("WALLET_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield engine
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()


@pytest.fixture
def client(engine, settings) -> Iterator[TestClient]:
    """The API on this test's freshly migrated database."""
    with TestClient(create_app(settings)) as client:
        yield client


# A test module that defines a module-scoped `release` (a database after the release steps,
# see tests.support.Release) gets these two for reading it.


@pytest.fixture(scope="module")
def release_engine(release) -> Iterator[Engine]:
    engine = make_engine(release.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def release_client(release) -> Iterator[TestClient]:
    settings = Settings(database_url=release.database_url, jwt_secret=JWT_SECRET, _env_file=None)
    with TestClient(create_app(settings)) as client:
        yield client
