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
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return env


def run_wallet(env: dict, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """The installed `wallet` command, run to the end."""
    return subprocess.run(
        [WALLET, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


class Release:
    """One backend after the release steps, with what each command printed."""

    def __init__(self, database_url: str, env: dict):
        self.database_url = database_url
        self.env = env
        self.results: dict[str, subprocess.CompletedProcess] = {}

    def run(self, name: str, *args: str) -> subprocess.CompletedProcess:
        self.results[name] = result = run_wallet(self.env, *args)
        return result


def signed_in(user_id: int, settings) -> dict[str, str]:
    """The Authorization header of `user_id`, signed with `settings`' key."""
    from wallet_api.auth import issue_token

    return {"Authorization": f"Bearer {issue_token(user_id, settings)}"}


ANSWER = ("user_id", "key", "answer")


def expected_answers(expected: dict, endpoint: str):
    """pytest params (user id, filter, answer) for each API answer listed in an expected file."""
    import pytest

    for user_id, filters in expected.get("api", {}).get(endpoint, {}).items():
        for key, answer in filters.items():
            yield pytest.param(int(user_id), key, answer, id=f"{user_id}-{key or 'all'}")


def _query(endpoint: str, key: str) -> str:
    if endpoint == "service_list":
        return f"status={key}" if key else ""
    return key


def _page(client, endpoint: str, user_id: int, key: str, page: int, expected_rows: list) -> dict:
    from wallet.settings import Settings
    from wallet_api.auth import issue_token

    token = issue_token(user_id, Settings(jwt_secret=JWT_SECRET, _env_file=None))
    response = client.get(
        f"/payment/{endpoint}/?{_query(endpoint, key)}&page={page}&per_page=10",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["current"], body["per_page"]) == (page, 10)
    assert len(body["data"]) == len(expected_rows)
    shown = [
        {field: row[field] for field in expected_row}
        for row, expected_row in zip(body["data"], expected_rows, strict=True)
    ]
    assert shown == expected_rows
    return body


def check_answer(client, endpoint: str, user_id: int, key: str, answer: dict) -> None:
    """The first and last page of one filter match the expected answer, field by field."""
    first = _page(client, endpoint, user_id, key, 1, answer["first_page"])
    assert (first["count"], first["pages"], first["is_paginated"]) == (
        answer["count"],
        answer["pages"],
        answer["is_paginated"],
    )
    last = _page(client, endpoint, user_id, key, answer["pages"], answer["last_page"])
    assert last["count"] == answer["count"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_environment(database_url: str, var_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of `wallet serve` on `database_url`; `settings` are more WALLET_* values."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_")}
    env.update(WALLET_DATABASE_URL=database_url, WALLET_JWT_SECRET=JWT_SECRET)
    env.update(WALLET_VAR_DIR=str(var_dir), **settings)
    return env


class ServedApi:
    """A `wallet serve` process on 127.0.0.1, started and stopped by a test."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [WALLET, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_answering(self, timeout: float = 30) -> None:
        """Returns once the server answers /health at all (503 included)."""
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"wallet serve exited: {self.log_path.read_text()}")
            try:
                httpx.get(f"{self.url}/health", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"wallet serve did not answer in {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "ServedApi":
        try:
            self.wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
