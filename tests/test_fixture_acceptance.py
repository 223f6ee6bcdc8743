"""The release, end to end on the legacy export: the `wallet` commands, then the API answers.

For each backend the commands run once, as ops would run them, against a fresh database; the
tests then compare every value in the fixture's expected.json.
"""

import json

import pytest
from sqlalchemy import func, select

from tests.support import (
    BACKENDS,
    FIXTURES,
    Release,
    check_answer,
    cli_environment,
    expected_answers,
    new_database_url,
)
from wallet.tables import item_record, migration_quarantine, payment_record, service_list

EXPECTED = json.loads((FIXTURES / "expected.json").read_text()) if FIXTURES.is_dir() else {}


@pytest.fixture(scope="module", params=BACKENDS)
def release(request, tmp_path_factory, prefect_api_url, legacy_fixture_dir) -> Release:
    directory = tmp_path_factory.mktemp(f"release-{request.param}")
    database_url = new_database_url(request, request.param, directory)
    release = Release(
        database_url, cli_environment(database_url, directory / "var", prefect_api_url)
    )
    release.run("upgrade", "db", "upgrade")
    release.run("legacy", "import", "legacy", str(legacy_fixture_dir))
    release.run("orders", "import", "orders", str(legacy_fixture_dir / "payment_record.csv"))
    release.run("migrate", "migrate-vip", "--batch-size", "50")
    release.run("migrate again", "migrate-vip", "--batch-size", "7")
    return release


def test_release_commands_exit_as_documented(release):
    codes = {name: result.returncode for name, result in release.results.items()}
    assert codes == {
        "upgrade": 0,
        "legacy": 0,
        "orders": 1,  # four broken lines are rejected; the rest are imported
        "migrate": 0,
        "migrate again": 0,
    }, {name: result.stderr[-2000:] for name, result in release.results.items()}


def test_orders_import_reports_each_rejected_line(release, release_engine):
    printed = release.results["orders"].stdout
    for line, reason in EXPECTED["orders_rejected"].items():
        assert f"line {line}: {reason}" in printed
    with release_engine.connect() as connection:
        orders = connection.execute(select(func.count()).select_from(payment_record)).scalar_one()
    assert orders == EXPECTED["orders_imported"]


def test_migration_report_counts_rows_and_reasons(release):
    first = release.results["migrate"].stdout
    assert f"legacy rows read          {EXPECTED['legacy_rows']:>9,}" in first
    assert f"migrated by this run      {EXPECTED['migrated']:>9,}" in first
    for reason, count in EXPECTED["quarantine_reasons"].items():
        assert f"    {reason:<23} {count:>9,} / {count:,}" in first
    again = release.results["migrate again"].stdout
    assert f"migrated by this run      {0:>9,}" in again
    assert f"already migrated          {EXPECTED['migrated']:>9,}" in again


def test_second_migration_leaves_the_tables_as_the_first(release_engine):
    with release_engine.connect() as connection:
        plans = connection.execute(select(func.count()).select_from(item_record)).scalar_one()
        held = dict(
            connection.execute(
                select(migration_quarantine.c.legacy_id, migration_quarantine.c.reason)
            ).all()
        )
        total = connection.execute(select(func.sum(item_record.c.price))).scalar_one()
        statuses = dict(
            connection.execute(
                select(service_list.c.status, func.count()).group_by(service_list.c.status)
            ).all()
        )
    assert plans == EXPECTED["migrated"]
    assert held == {int(legacy_id): reason for legacy_id, reason in EXPECTED["quarantined"].items()}
    assert str(total) == EXPECTED["price_total"]
    assert statuses == EXPECTED["effective_status_counts"]


@pytest.mark.parametrize(
    ("user_id", "key", "answer"), list(expected_answers(EXPECTED, "service_list"))
)
def test_service_list_answers_match_the_fixture(release_client, user_id, key, answer):
    check_answer(release_client, "service_list", user_id, key, answer)


@pytest.mark.parametrize(
    ("user_id", "key", "answer"), list(expected_answers(EXPECTED, "payment_record"))
)
def test_payment_record_answers_match_the_fixture(release_client, user_id, key, answer):
    check_answer(release_client, "payment_record", user_id, key, answer)
