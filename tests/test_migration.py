"""The VIP -> plan record migration, on the legacy fixture, on SQLite and PostgreSQL."""

import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import func, select

from pipelines import vip_migration
from pipelines.flows.migrate_vip import migrate_vip, rollback_vip_migration
from pipelines.importers import import_legacy
from wallet.tables import item_record, legacy_user_vip, migration_quarantine
from wallet.transitions import Entity, move


@pytest.fixture
def legacy_loaded(engine, legacy_fixture_dir):
    import_legacy(engine, legacy_fixture_dir)
    return engine


@pytest.fixture
def expected(legacy_fixture_dir) -> dict:
    return json.loads((legacy_fixture_dir / "expected.json").read_text())


def run_all_batches(engine, size: int, **options) -> vip_migration.MigrationReport:
    """The flow's loop without Prefect: every batch in legacy id order."""
    report = vip_migration.MigrationReport()
    after = None
    while True:
        batch_report, after = vip_migration.migrate_batch(engine, after, size, **options)
        if after is None:
            return report
        report.add(batch_report)


def table_counts(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        plans = connection.execute(select(func.count()).select_from(item_record)).scalar_one()
        held = connection.execute(
            select(func.count()).select_from(migration_quarantine)
        ).scalar_one()
    return plans, held


def quarantine(engine) -> dict[int, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(migration_quarantine.c.legacy_id, migration_quarantine.c.reason)
        )
        return dict(rows.all())


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("0.005", "0.01"),
        ("1998.9999999999998", "1999.00"),
        ("1234.565", "1234.57"),
        ("199.985", "199.99"),
        ("19999.0", "19999.00"),
        (" 0 ", "0.00"),
    ],
)
def test_round_price_rounds_half_up_from_the_text(text, cents):
    assert vip_migration.round_price(text) == Decimal(cents)


def test_legacy_times_are_read_as_shanghai_wall_clock():
    assert vip_migration.to_utc(datetime(2035, 8, 18, 23, 59, 59)) == datetime(
        2035, 8, 18, 15, 59, 59, tzinfo=UTC
    )


@pytest.mark.parametrize("batch_size", [1, 7, 10_000])
def test_migration_quarantines_exactly_the_expected_rows(legacy_loaded, expected, batch_size):
    report = run_all_batches(legacy_loaded, batch_size)

    assert report.rows_read == expected["legacy_rows"]
    assert report.migrated == expected["migrated"]
    assert quarantine(legacy_loaded) == {
        int(legacy_id): reason for legacy_id, reason in expected["quarantined"].items()
    }
    assert dict(report.quarantined_new) == expected["quarantine_reasons"]
    with legacy_loaded.connect() as connection:
        total = connection.execute(select(func.sum(item_record.c.price))).scalar_one()
    assert str(total) == expected["price_total"]


def test_migrated_plan_record_keeps_name_price_status_and_order(legacy_loaded):
    run_all_batches(legacy_loaded, 50)
    with legacy_loaded.connect() as connection:
        row = connection.execute(select(item_record).where(item_record.c.legacy_id == 71)).one()
    # Legacy line: 71,1011,6,,Success ,1,2024-10-27 08:35:03,2024-10-27 10:57:03,
    #              2034-01-18 23:59:59,VIP2024102700071
    assert row.user_id == 1011
    assert row.service_desc == "自助套餐（季度）"
    assert row.price == Decimal("799.00")
    assert row.status == "success"
    assert row.create_time == datetime(2024, 10, 27, 0, 35, 3, tzinfo=UTC)
    assert row.expire_time == datetime(2034, 1, 18, 15, 59, 59, tzinfo=UTC)
    assert row.order_id == "VIP2024102700071"


def test_second_run_adds_nothing(legacy_loaded, expected):
    run_all_batches(legacy_loaded, 50)
    before = table_counts(legacy_loaded)

    report = run_all_batches(legacy_loaded, 50)

    assert table_counts(legacy_loaded) == before == (expected["migrated"], 12)
    assert report.migrated == 0
    assert report.already_migrated == expected["migrated"]
    assert sum(report.quarantined_new.values()) == 0
    assert dict(report.quarantined_total) == expected["quarantine_reasons"]


def test_dry_run_writes_nothing_and_reports_what_a_run_would_do(legacy_loaded):
    dry = run_all_batches(legacy_loaded, 20, dry_run=True)
    assert table_counts(legacy_loaded) == (0, 0)

    real = run_all_batches(legacy_loaded, 20)
    assert {**dry.as_dict(), "dry_run": False} == real.as_dict()


def test_run_resumed_after_a_partial_run_ends_with_the_same_rows(legacy_loaded, expected):
    first, _ = vip_migration.migrate_batch(legacy_loaded, None, 30)
    assert first.rows_read == 30

    report = run_all_batches(legacy_loaded, 30)

    assert report.already_migrated == first.migrated
    assert table_counts(legacy_loaded) == (expected["migrated"], 12)


def test_retry_quarantined_migrates_rows_corrected_in_a_new_export(
    legacy_loaded, legacy_fixture_dir, tmp_path
):
    run_all_batches(legacy_loaded, 50)
    corrected = tmp_path / "corrected"
    shutil.copytree(legacy_fixture_dir, corrected)
    user_vip = corrected / "user_vip.csv"
    user_vip.chmod(0o644)
    text = user_vip.read_text()
    # Row 233 lost its user and row 238 has a status the new system does not know.
    text = text.replace("233,,7,", "233,1077,7,").replace(
        ",frozen,1,2024-07-01", ",success,1,2024-07-01"
    )
    user_vip.write_text(text)
    import_legacy(legacy_loaded, corrected)

    plain = run_all_batches(legacy_loaded, 50)
    assert plain.migrated == 0

    retried = run_all_batches(legacy_loaded, 50, retry_quarantined=True)

    assert retried.migrated == 2
    assert retried.released_from_quarantine == 2
    assert 233 not in quarantine(legacy_loaded)
    assert 238 not in quarantine(legacy_loaded)
    assert len(quarantine(legacy_loaded)) == 10
    with legacy_loaded.connect() as connection:
        user = connection.execute(
            select(item_record.c.user_id).where(item_record.c.legacy_id == 233)
        ).scalar_one()
    assert user == 1077


def test_rollback_removes_migrated_records_but_keeps_moved_ones(flow_engine, legacy_fixture_dir):
    import_legacy(flow_engine, legacy_fixture_dir)
    migrate_vip(batch_size=100)
    with flow_engine.begin() as connection:
        record_id = connection.execute(
            select(item_record.c.id).where(item_record.c.legacy_id == 71)
        ).scalar_one()
        move(
            connection,
            Entity.PLAN,
            "success",
            "refund",
            actor="support desk",
            reason="user asked for a refund",
            where=[item_record.c.id == record_id],
        )

    summary = rollback_vip_migration(batch_size=40)

    assert summary["removed"] == 231
    assert summary["kept_changed_legacy_ids"] == [71]
    assert summary["quarantine_cleared"] == 12
    assert table_counts(flow_engine) == (1, 0)
    with flow_engine.connect() as connection:
        legacy_rows = connection.execute(
            select(func.count()).select_from(legacy_user_vip)
        ).scalar_one()
    assert legacy_rows == 244


def test_flow_returns_and_publishes_the_report(flow_engine, legacy_fixture_dir, expected):
    import_legacy(flow_engine, legacy_fixture_dir)

    summary = migrate_vip(batch_size=64)

    assert summary["rows_read"] == 244
    assert summary["migrated"] == expected["migrated"]
    assert summary["quarantined_by_reason"]["duplicate"] == {"new": 3, "total": 3}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["migrate-vip-report"])),
        )
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["migrate-vip-progress"])),
        )
    latest = max(artifacts, key=lambda artifact: artifact.created)
    assert "| migrated by this run | 232 |" in latest.data
    assert "| duplicate | 3 | 3 |" in latest.data
    assert max(progress, key=lambda artifact: artifact.created).data == 100.0


def test_a_row_corrected_after_migrating_is_remigrated_after_a_rollback(
    flow_engine, legacy_fixture_dir, tmp_path
):
    import_legacy(flow_engine, legacy_fixture_dir)
    migrate_vip(batch_size=100)
    corrected = tmp_path / "corrected"
    shutil.copytree(legacy_fixture_dir, corrected)
    user_vip = corrected / "user_vip.csv"
    user_vip.chmod(0o644)
    # Row 71 was sold at the role's list price; the corrected export has what was paid.
    user_vip.write_text(user_vip.read_text().replace("71,1011,6,,", "71,1011,6,123.45,"))
    import_legacy(flow_engine, corrected)

    assert migrate_vip(batch_size=100)["migrated"] == 0
    rollback_vip_migration(batch_size=100)
    migrate_vip(batch_size=100)

    with flow_engine.connect() as connection:
        price = connection.execute(
            select(item_record.c.price).where(item_record.c.legacy_id == 71)
        ).scalar_one()
    assert price == Decimal("123.45")
    assert table_counts(flow_engine) == (232, 12)
