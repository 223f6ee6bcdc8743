"""Helpers shared by the tests: where the fixture is, fresh databases, the `wallet` command."""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, make_url

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "legacy-wallet"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
BACKENDS = ("sqlite", "postgresql")
WALLET = shutil.which("wallet", path=str(Path(sys.executable).parent)) or "wallet"

_database_numbers = itertools.count(1)


def _new_postgres_database(server_url: str) -> str:
    name = f"wallet_test_{os.getpid()}_{next(_database_numbers)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"drop database if exists {name}")
        connection.exec_driver_sql(f"create database {name}")
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def new_database_url(request, backend: str, directory: Path) -> str:
    """An empty database on `backend` (the schema is not applied yet)."""
    if backend == "sqlite":
        return f"sqlite:///{directory / 'wallet.db'}"
    return _new_postgres_database(request.getfixturevalue("postgres_server_url"))


def cli_environment(database_url: str, var_dir: Path, prefect_api_url: str) -> dict[str, str]:
    """The environment for running the `wallet` command on `database_url`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WALLET_", "PREFECT_"))
    }
    env.update(
        WALLET_DATABASE_URL=database_url,
        WALLET_JWT_SECRET=JWT_SECRET,
        WALLET_VAR_DIR=str(var_dir),
        PREFECT_API_URL=prefect_api_url,
        PREFECT_HOME=os.environ["PREFECT_HOME"],
    )
    return env


def run_wallet(env: dict, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """The installed `wallet` command, run to the end."""
    return subprocess.run(
        [WALLET, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
