"""The `wallet` command as ops run it: exit codes, messages, and a migration killed half way."""

import os
import signal
import subprocess
import time

import jwt
import pytest
from sqlalchemy import func, select

from pipelines.importers import import_legacy
from tests.support import JWT_SECRET, WALLET, run_wallet
from wallet.tables import item_record, migration_quarantine, payment_record


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_commands_before_db_upgrade_say_what_to_run(cli_env, legacy_fixture_dir):
    result = run_wallet(cli_env, "import", "orders", str(legacy_fixture_dir / "payment_record.csv"))

    assert result.returncode == 3
    assert "run `wallet db upgrade` first" in result.stderr


def test_import_orders_with_a_wrong_header_exits_2_and_writes_nothing(engine, cli_env, tmp_path):
    bad = tmp_path / "orders.csv"
    bad.write_text("order_id,user_id,amount\nPB1,1001,5.00\n")

    result = run_wallet(cli_env, "import", "orders", str(bad))

    assert result.returncode == 2
    assert "wrong header" in result.stderr
    assert "missing column(s)" in result.stderr
    assert count(engine, payment_record) == 0


def test_import_orders_of_a_missing_file_exits_2(engine, cli_env, tmp_path):
    result = run_wallet(cli_env, "import", "orders", str(tmp_path / "nope.csv"))

    assert result.returncode == 2
    assert "nope.csv cannot be read" in result.stderr


def test_token_is_refused_without_a_secret_outside_demo(cli_env):
    env = {key: value for key, value in cli_env.items() if key != "WALLET_JWT_SECRET"}

    result = run_wallet(env, "token", "1001")

    assert result.returncode == 3
    assert "WALLET_JWT_SECRET is not set" in result.stderr


def test_token_is_refused_with_a_short_secret(cli_env):
    result = run_wallet({**cli_env, "WALLET_JWT_SECRET": "x" * 31}, "token", "1001")

    assert result.returncode == 3
    assert "at least 32" in result.stderr


def test_token_signs_the_user_id_as_sub(cli_env):
    result = run_wallet(cli_env, "token", "1001", "--hours", "1")

    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "1001"
    assert claims["exp"] - time.time() == pytest.approx(3600, abs=60)


def test_demo_mode_generates_and_keeps_one_secret(cli_env, tmp_path):
    env = {key: value for key, value in cli_env.items() if key != "WALLET_JWT_SECRET"}
    env["WALLET_ENV"] = "demo"

    first = run_wallet(env, "token", "7")
    second = run_wallet(env, "token", "7")

    assert first.returncode == second.returncode == 0
    secret = (tmp_path / "var" / "demo-jwt-secret").read_text().strip()
    assert len(secret) >= 32
    for result in (first, second):
        assert jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "7"


def test_migrate_vip_dry_run_prints_the_report_and_writes_nothing(
    engine, cli_env, legacy_fixture_dir
):
    import_legacy(engine, legacy_fixture_dir)

    result = run_wallet(cli_env, "migrate-vip", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "dry run, nothing written" in result.stdout
    assert f"would be migrated         {232:>9,}" in result.stdout
    assert count(engine, item_record) == 0
    assert count(engine, migration_quarantine) == 0


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_migration_stopped_after_its_first_batch_ends_with_the_expected_rows(
    engine, cli_env, legacy_fixture_dir, tmp_path, stop
):
    import_legacy(engine, legacy_fixture_dir)
    output = tmp_path / "migrate.log"
    with output.open("w") as log:
        run = subprocess.Popen(
            [WALLET, "migrate-vip", "--batch-size", "5"],
            env=cli_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while count(engine, item_record) == 0 and time.monotonic() < deadline:
        assert run.poll() is None, "the migration ended before it could be stopped"
        time.sleep(0.005)
    # Ctrl-C reaches the whole process group, as a terminal sends it; SIGTERM only the command.
    if stop == signal.SIGTERM:
        os.kill(run.pid, stop)
    else:
        os.killpg(run.pid, stop)
    returncode = run.wait(timeout=30)
    migrated_when_stopped = count(engine, item_record)
    assert 0 < migrated_when_stopped < 232
    if stop != signal.SIGKILL:
        assert returncode == 128 + stop
        assert "every finished batch is kept" in output.read_text()

    result = run_wallet(cli_env, "migrate-vip", "--batch-size", "5")

    assert result.returncode == 0, result.stderr
    assert count(engine, item_record) == 232
    assert count(engine, migration_quarantine) == 12
    assert f"already migrated          {migrated_when_stopped:>9,}" in result.stdout


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("garbage", "is not a database URL"),
        ("postgres://wallet@127.0.0.1:1/wallet", "names a 'postgres' database"),
        ("mysql://wallet@127.0.0.1:1/wallet", "names a 'mysql' database"),
        ("sqlite://", "in-memory SQLite database"),
        ("sqlite:////proc/no-such-dir/wallet.db", "cannot create the folder"),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_url_that_cannot_work_exits_3_naming_the_setting(cli_env, url, said):
    result = run_wallet({**cli_env, "WALLET_DATABASE_URL": url}, "db", "upgrade")

    assert result.returncode == 3
    assert "WALLET_DATABASE_URL" in result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WALLET_ENV", "staging"),
        ("WALLET_SQLITE_BUSY_TIMEOUT_MS", "abc"),
        ("WALLET_DB_POOL_SIZE", "0"),
        ("WALLET_UNPAID_TIMEOUT", "-PT5M"),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bad_setting_exits_3_naming_the_variable(cli_env, variable, value):
    result = run_wallet({**cli_env, variable: value}, "db", "upgrade")

    assert result.returncode == 3
    assert f"{variable}:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_unreachable_database_exits_4(cli_env):
    unreachable = "postgresql+psycopg2://wallet:secret@127.0.0.1:1/wallet"

    result = run_wallet({**cli_env, "WALLET_DATABASE_URL": unreachable}, "db", "upgrade")

    assert result.returncode == 4
    assert "cannot reach the database" in result.stderr


def test_a_schema_older_than_the_code_is_refused_until_upgraded(engine, cli_env):
    from alembic import command

    from wallet.schema import alembic_config

    command.downgrade(alembic_config(engine), "0001")

    result = run_wallet(cli_env, "flows", "run", "expire-plans")

    assert result.returncode == 3
    assert "schema is at revision 0001" in result.stderr
    assert run_wallet(cli_env, "db", "upgrade").returncode == 0
