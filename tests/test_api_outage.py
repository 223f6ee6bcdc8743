"""The database going away under a running `wallet serve`: PostgreSQL is stopped and started
again while the same server process keeps serving."""

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, insert, make_url

from tests.support import JWT_SECRET, ServedApi, serve_environment, signed_in
from wallet.db import make_engine
from wallet.schema import upgrade
from wallet.settings import Settings
from wallet.tables import item_record

PATHS = ("/payment/service_list/", "/payment/payment_record/", "/health")
UNAVAILABLE = {"detail": "database unavailable"}


class OwnPostgres:
    """A PostgreSQL server of one test (pgserver, on a Unix socket), that it may stop and start.

    The session's shared server is left alone: other tests use it.
    """

    def __init__(self, data_dir: Path):
        import pgserver

        self.data_dir = data_dir
        self.server = pgserver.get_server(data_dir, cleanup_mode="stop")
        self.server_url = (
            make_url(self.server.get_uri())
            .set(drivername="postgresql+psycopg2")
            .render_as_string(hide_password=False)
        )
        self.running = True

    def create_database(self, name: str) -> str:
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"create database {name}")
        admin.dispose()
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), "-w", *args],
            user=self.server.system_user,  # pgserver runs postgres as its own user under root
            capture_output=True,
            check=True,
            timeout=30,
        )

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")
        self.running = False

    def start(self) -> None:
        """Starts it as pgserver did: no TCP address, the same socket directory."""
        socket_dir = make_url(self.server_url).query["host"]
        log = str(self.data_dir / "log")
        self._pg_ctl("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log, "start")
        self.running = True

    def remove(self) -> None:
        # pgserver stops only the postmaster it started itself, not one started again here.
        if self.running:
            self.stop()
        self.server.cleanup()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres(Path(tempfile.mkdtemp(prefix="wallet-outage-pg-")))
    yield server
    server.remove()


def test_wallet_serve_answers_503_while_postgresql_is_stopped_and_200_once_it_is_back(
    own_postgres, tmp_path
):
    database_url = own_postgres.create_database("wallet_outage")
    settings = Settings(database_url=database_url, jwt_secret=JWT_SECRET, _env_file=None)
    engine = make_engine(database_url, settings)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(item_record).values(
                user_id=1,
                service_desc="标准版",
                price=Decimal("999.00"),
                status="applying",
                create_time=datetime(2025, 10, 19, tzinfo=UTC),
            )
        )
    engine.dispose()
    headers = signed_in(1, settings)

    def ask_every_path(base_url: str) -> list[httpx.Response]:
        return [httpx.get(base_url + path, headers=headers, timeout=20) for path in PATHS]

    env = serve_environment(database_url, tmp_path / "var")
    with ServedApi(env, tmp_path / "serve.log") as api:
        before = ask_every_path(api.url)
        own_postgres.stop()
        away = ask_every_path(api.url) + ask_every_path(api.url)
        own_postgres.start()
        back = ask_every_path(api.url)
        still_serving = api.process.poll() is None

    assert [response.status_code for response in before] == [200, 200, 200]
    assert [(response.status_code, response.json()) for response in away] == [
        (503, UNAVAILABLE)
    ] * 6
    assert {response.headers["content-type"] for response in away} == {"application/json"}
    assert [response.status_code for response in back] == [200, 200, 200]
    assert back[0].json()["count"] == 1
    assert still_serving
