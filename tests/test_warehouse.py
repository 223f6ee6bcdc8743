"""The reporting warehouse: normalised snapshots, the incremental log, the swap, the flow."""

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from sqlalchemy import insert, update

from pipelines.flows.warehouse import build_warehouse as build_warehouse_flow
from pipelines.warehouse import (
    Warehouse,
    WarehouseNotBuilt,
    build_warehouse,
    publish_snapshot,
    scanner_path,
    source_name,
    stage_snapshot,
)
from wallet.db import make_engine
from wallet.errors import ConfigurationError
from wallet.schema import upgrade
from wallet.tables import item_record, plan, transition_log

CREATED = datetime(2025, 1, 31, 16, 30, 5, 123456, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path, settings) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb", settings.timezone)


def add_plan_record(engine, **values) -> None:
    with engine.begin() as connection:
        if connection.execute(plan.select()).first() is None:
            connection.execute(
                insert(plan),
                {
                    "id": 2,
                    "name": "标准版",
                    "list_price": Decimal("1999.00"),
                    "service_month": 3,
                    "is_on_sale": True,
                },
            )
        defaults = {
            "user_id": 1001,
            "plan_id": 2,
            "service_desc": "标准版",
            "price": Decimal("1599.20"),
            "status": "success",
            "create_time": CREATED,
            "active_time": None,
            "expire_time": None,
            "order_id": None,
            "legacy_id": None,
        }
        connection.execute(insert(item_record), defaults | values)


def add_log_rows(engine, count: int) -> None:
    rows = [
        {
            "entity": "plan",
            "entity_id": str(number),
            "from_status": "success",
            "to_status": "expired",
            "occurred_at": CREATED,
            "business_time": CREATED,
            "actor": "test",
            "reason": "expire_time passed",
        }
        for number in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(insert(transition_log), rows)


def rows(warehouse: Warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as connection:
        return connection.execute(sql).fetchall()


def test_scanners_are_loaded_from_their_pip_packages():
    for backend in ("sqlite", "postgresql"):
        assert scanner_path(backend).is_file()


def test_reading_before_the_first_build_says_how_to_build(warehouse):
    with pytest.raises(WarehouseNotBuilt, match="build-warehouse"):
        warehouse.query("latest_build")


def test_money_and_times_are_normalised_whatever_the_backend(engine, settings, warehouse):
    add_plan_record(engine)
    build_warehouse(warehouse, settings.database_url)

    types = dict(
        rows(
            warehouse,
            "select column_name, data_type from duckdb_columns() where table_name = 'item_record'",
        )
    )
    assert (types["price"], types["create_time"], types["active_time"]) == (
        "DECIMAL(14,2)",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP WITH TIME ZONE",
    )
    price, created = rows(warehouse, "select price, create_time from item_record")[0]
    assert price == Decimal("1599.20")
    assert created == CREATED


def test_the_log_is_copied_incrementally_and_the_rest_whole(engine, settings, warehouse):
    add_plan_record(engine)
    add_log_rows(engine, 3)
    first = build_warehouse(warehouse, settings.database_url)
    assert (first.log_rows_added, first.log_rows, first.log_reloaded) == (3, 3, True)

    add_log_rows(engine, 2)
    with engine.begin() as connection:
        connection.execute(update(item_record).values(status="expired"))
    second = build_warehouse(warehouse, settings.database_url)

    assert (second.log_rows_added, second.log_rows, second.log_reloaded) == (2, 5, False)
    assert rows(warehouse, "select count(distinct id), max(id) from transition_log") == [(5, 5)]
    assert rows(warehouse, "select status from item_record") == [("expired",)]
    assert second.rows["item_record"] == 1


def test_another_source_gets_its_log_copied_whole(engine, settings, warehouse, tmp_path):
    add_log_rows(engine, 2)
    build_warehouse(warehouse, settings.database_url)
    other = tmp_path / "other.db"
    other_engine = make_engine(f"sqlite:///{other}", settings)
    upgrade(other_engine)
    add_log_rows(other_engine, 1)
    other_engine.dispose()

    report = build_warehouse(warehouse, f"sqlite:///{other}")

    assert (report.log_rows_added, report.log_rows, report.log_reloaded) == (1, 1, True)


def test_readers_see_the_old_snapshot_until_the_new_one_is_published(engine, settings, warehouse):
    add_plan_record(engine)
    build_warehouse(warehouse, settings.database_url)
    add_plan_record(engine, status="refund")

    staged = stage_snapshot(warehouse, settings.database_url)
    assert rows(warehouse, "select status from item_record") == [("success",)]

    publish_snapshot(warehouse, staged)
    assert sorted(rows(warehouse, "select status from item_record")) == [
        ("refund",),
        ("success",),
    ]


def test_a_failed_build_leaves_the_published_snapshot(engine, settings, warehouse, tmp_path):
    add_plan_record(engine)
    build_warehouse(warehouse, settings.database_url)

    with pytest.raises(ConfigurationError, match="no SQLite database at"):
        build_warehouse(warehouse, f"sqlite:///{tmp_path / 'missing' / 'wallet.db'}")
    half = tmp_path / "half.db"
    with closing(sqlite3.connect(half)) as connection:
        connection.execute("create table plan (id integer, name text)")
    with pytest.raises(ConfigurationError, match=r"lacks plan\.list_price.*wallet db upgrade"):
        build_warehouse(warehouse, f"sqlite:///{half}")

    assert rows(warehouse, "select count(*) from item_record") == [(1,)]


def test_a_reader_waits_while_a_build_holds_the_file(engine, settings, warehouse):
    build_warehouse(warehouse, settings.database_url)
    hold_the_file = (
        "import duckdb, sys, time; connection = duckdb.connect(sys.argv[1]); "
        "print('held', flush=True); time.sleep(1.5); connection.close()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", hold_the_file, str(warehouse.path)],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert len(warehouse.query("latest_build")) == 1
        assert time.monotonic() - started > 0.5


def test_build_warehouse_flow_publishes_and_reports(flow_engine, settings, tmp_path):
    add_plan_record(flow_engine)
    add_log_rows(flow_engine, 4)
    path = tmp_path / "flow.duckdb"

    summary = build_warehouse_flow(warehouse_path=str(path))

    assert summary["rows"]["item_record"] == 1
    assert summary["transition_log_rows_added"] == 4
    assert summary["source"] == source_name(settings.database_url)
    built = Warehouse(path, settings.timezone).query("latest_build")
    assert built["last_log_id"].iloc[0] == 4

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["build-warehouse-report"])),
        )
    latest = max(artifacts, key=lambda artifact: artifact.created)
    assert "| item_record | 1 |" in latest.data
    assert "4 rows added, 4 in all" in latest.data
