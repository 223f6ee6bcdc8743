"""The scheduled flows on the legacy export, run from the shell as ops would run them.

After the release steps, the settlements are imported and the flows run in the order the
fixture's expected_after_transitions.json was made with; then every flow runs once more.
"""

import json

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import func, select

from tests.support import (
    ANSWER,
    BACKENDS,
    FIXTURES,
    Release,
    check_answer,
    cli_environment,
    expected_answers,
    new_database_url,
)
from wallet.db import make_engine
from wallet.tables import item_record, payment_record, refund_settlement, transition_log

AFTER = FIXTURES / "expected_after_transitions.json"
EXPECTED = json.loads(AFTER.read_text()) if AFTER.is_file() else {}
FLOW_ORDER = ("settle-refunds", "close-unpaid-orders", "expire-plans", "settle-refunds")


@pytest.fixture(scope="module", params=BACKENDS)
def release(request, tmp_path_factory, prefect_api_url, legacy_fixture_dir) -> Release:
    directory = tmp_path_factory.mktemp(f"transitions-{request.param}")
    database_url = new_database_url(request, request.param, directory)
    release = Release(
        database_url, cli_environment(database_url, directory / "var", prefect_api_url)
    )
    release.run("upgrade", "db", "upgrade")
    release.run("legacy", "import", "legacy", str(legacy_fixture_dir))
    release.run("orders", "import", "orders", str(legacy_fixture_dir / "payment_record.csv"))
    release.run("migrate", "migrate-vip")
    release.run("refunds", "import", "refunds", str(legacy_fixture_dir / "refund_settlement.csv"))
    for step, name in enumerate(FLOW_ORDER):
        release.run(f"{step} {name}", "flows", "run", name)
    release.log_rows_after_first_pass = _log_rows(release.database_url)
    for name in dict.fromkeys(FLOW_ORDER):
        release.run(f"again {name}", "flows", "run", name)
    return release


def _log_rows(database_url: str) -> int:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(transition_log)).scalar_one()
    engine.dispose()
    return rows


def report(release, name: str) -> dict:
    result = release.results[name]
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_every_command_succeeds(release):
    failed = {
        name: result.stderr[-2000:]
        for name, result in release.results.items()
        if result.returncode != (1 if name == "orders" else 0)
    }
    assert failed == {}


def test_refund_import_stores_each_settlement_once(release, release_engine):
    assert f"{EXPECTED['settlement_lines']} lines read" in release.results["refunds"].stdout
    assert "1 unchanged" in release.results["refunds"].stdout
    with release_engine.connect() as connection:
        stored = connection.execute(
            select(func.count()).select_from(refund_settlement)
        ).scalar_one()
    assert stored == EXPECTED["settlement_lines"] - 1


def test_settlements_are_applied_or_rejected_as_expected(release, release_engine):
    first, second = report(release, "0 settle-refunds"), report(release, "3 settle-refunds")
    assert first["applied"] + second["applied"] == EXPECTED["settlements_applied"]
    rejected = {row["line"]: row["reason"] for row in first["rejected_lines"]}
    assert rejected == {
        int(line): reason for line, reason in EXPECTED["settlement_rejected"].items()
    }
    with release_engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(refund_settlement.c.source_line, refund_settlement.c.reason).where(
                    refund_settlement.c.status == "rejected"
                )
            ).all()
        )
    assert stored == rejected


def test_stored_statuses_match_the_fixture(release_engine):
    with release_engine.connect() as connection:
        plans = dict(
            connection.execute(
                select(item_record.c.status, func.count()).group_by(item_record.c.status)
            ).all()
        )
        orders = dict(
            connection.execute(
                select(payment_record.c.order_status, func.count()).group_by(
                    payment_record.c.order_status
                )
            ).all()
        )
    assert plans == EXPECTED["plan_status_counts"]
    assert orders == EXPECTED["order_status_counts"]


def test_running_every_flow_again_moves_nothing_and_logs_nothing(release):
    for name in dict.fromkeys(FLOW_ORDER):
        assert report(release, f"again {name}")["moved"] == 0
    assert _log_rows(release.database_url) == release.log_rows_after_first_pass > 0


def test_every_move_is_logged_once_with_its_flow_run(release, release_engine):
    moved = sum(report(release, f"{step} {name}")["moved"] for step, name in enumerate(FLOW_ORDER))
    with release_engine.connect() as connection:
        actors = connection.execute(
            select(transition_log.c.actor, func.count()).group_by(transition_log.c.actor)
        ).all()
    assert sum(count for _, count in actors) == moved
    assert {actor.split("/")[0] for actor, _ in actors} == {
        "settle-refunds",
        "close-unpaid-orders",
        "expire-plans",
    }


@pytest.mark.parametrize(ANSWER, list(expected_answers(EXPECTED, "service_list")))
def test_service_list_answers_match_after_transitions(release_client, user_id, key, answer):
    check_answer(release_client, "service_list", user_id, key, answer)


@pytest.mark.parametrize(ANSWER, list(expected_answers(EXPECTED, "payment_record")))
def test_payment_record_answers_match_after_transitions(release_client, user_id, key, answer):
    check_answer(release_client, "payment_record", user_id, key, answer)


def test_each_flow_publishes_its_moves_as_an_artifact(release):
    expire = report(release, "2 expire-plans")
    with get_client(sync_client=True) as client:
        published = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["expire-plans-report"]))
        )
    moved = expire["moves"]["plan success -> expired"]
    assert moved > 0
    assert any(f"| plan | success | expired | {moved} |" in item.data for item in published)
