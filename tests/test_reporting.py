"""The reports on the legacy fixture, on SQLite and PostgreSQL, checked against its answers.

The fixture database is built as at release (imports, then the migration), snapshotted into
one warehouse; then the settlements are imported and the scheduled moves run as the fixture's
expected_after_transitions.json was made, and a second warehouse is snapshotted.
"""

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select

import wallet_reports as reports
from pipelines import scheduled_moves
from pipelines.importers import import_legacy, import_orders, import_refunds
from pipelines.vip_migration import QUARANTINE_REASONS
from pipelines.warehouse import Warehouse, build_warehouse
from tests.support import BACKENDS, FIXTURES, new_database_url
from tests.test_migration import run_all_batches
from wallet.db import make_engine
from wallet.schema import upgrade
from wallet.settings import Settings
from wallet.statuses import ORDER_STATUS_LABELS, PLAN_STATUS_LABELS, RECORD_TYPE_LABELS
from wallet.tables import item_record, payment_record

EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
AFTER = json.loads((FIXTURES / "expected_after_transitions.json").read_text())
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The moment the scheduled moves run at; the fixture's answers hold from 2026-02 to 2031-01.
FLOWS_RAN_AT = datetime(2026, 6, 1, tzinfo=UTC)
ACTOR = "test-reporting"


def release(engine: Engine, fixture_dir: Path) -> None:
    """The release steps: legacy data and orders imported, the VIP migration run."""
    upgrade(engine)
    import_legacy(engine, fixture_dir)
    import_orders(engine, fixture_dir / "payment_record.csv")
    run_all_batches(engine, 5_000)


def run_scheduled_moves(engine: Engine, fixture_dir: Path, now: datetime) -> None:
    """Settlements imported, then the flows' batches in the fixture's order, without Prefect."""
    import_refunds(engine, fixture_dir / "refund_settlement.csv")

    def settle():
        while scheduled_moves.settle_refunds_batch(engine, now, 1_000, ACTOR).processed:
            pass

    def until_done(batch):
        while batch().total:
            pass

    settle()
    until_done(
        lambda: scheduled_moves.close_unpaid_orders_batch(
            engine, now, timedelta(minutes=30), 10_000, ACTOR
        )
    )
    until_done(lambda: scheduled_moves.end_plans_of_ended_orders_batch(engine, 10_000, ACTOR))
    until_done(lambda: scheduled_moves.expire_plans_batch(engine, now, 10_000, ACTOR))
    settle()


class FixtureWarehouses:
    def __init__(self, engine: Engine, released: Warehouse, after: Warehouse):
        self.engine = engine
        self.released = released
        self.after = after


@pytest.fixture(scope="module", params=BACKENDS)
def warehouses(request, tmp_path_factory, legacy_fixture_dir) -> FixtureWarehouses:
    directory = tmp_path_factory.mktemp(f"reporting-{request.param}")
    database_url = new_database_url(request, request.param, directory)
    engine = make_engine(database_url, Settings(_env_file=None))
    release(engine, legacy_fixture_dir)
    released = Warehouse(directory / "released.duckdb", "Asia/Shanghai")
    build_warehouse(released, database_url)
    run_scheduled_moves(engine, legacy_fixture_dir, FLOWS_RAN_AT)
    after = Warehouse(directory / "after.duckdb", "Asia/Shanghai")
    build_warehouse(after, database_url)
    yield FixtureWarehouses(engine, released, after)
    engine.dispose()


def nonzero(frame, key: str, value: str) -> dict:
    return {row[key]: row[value] for _, row in frame.iterrows() if row[value]}


def test_plan_status_as_of_june_2026_is_the_fixture_effective_status(warehouses):
    status = reports.plan_status_distribution(warehouses.released, as_of="2026-06-01")
    assert nonzero(status, "status", "plans") == EXPECTED["effective_status_counts"]
    assert status["plans"].sum() == EXPECTED["migrated"]
    assert status["share"].sum() == pytest.approx(1.0)
    assert f"{status['amount_cny'].sum():.2f}" == EXPECTED["price_total"]


def test_plan_status_rule_reads_success_as_expired_once_expire_time_passed(warehouses):
    before = reports.plan_status_distribution(warehouses.released, as_of="2000-01-01")
    now = reports.plan_status_distribution(warehouses.released, as_of="2026-06-01")
    # Stored statuses do not change with the moment; only the read-time rule does.
    assert (
        now.set_index("status")["plans"]["expired"] > before.set_index("status")["plans"]["expired"]
    )


def test_order_statuses_after_transitions_are_the_fixture_stored_counts(warehouses):
    orders = reports.order_status_by_record_type(warehouses.after)
    by_status = orders.groupby("status")["orders"].sum()
    assert {status: n for status, n in by_status.items() if n} == AFTER["order_status_counts"]
    assert len(orders) == len(RECORD_TYPE_LABELS) * len(ORDER_STATUS_LABELS)
    with warehouses.engine.connect() as connection:
        amounts = connection.execute(select(payment_record.c.actual_price)).scalars().all()
    assert f"{orders['amount_cny'].sum():.2f}" == f"{sum(amounts, Decimal(0)):.2f}"


def test_plan_status_after_transitions_is_the_fixture_stored_counts(warehouses):
    status = reports.plan_status_distribution(warehouses.after, as_of=FLOWS_RAN_AT)
    assert nonzero(status, "status", "plans") == AFTER["plan_status_counts"]


def test_migration_outcome_is_the_fixture_migration(warehouses):
    outcome = reports.migration_outcome(warehouses.released)
    migrated = outcome[outcome["outcome"] == "migrated"].iloc[0]
    assert migrated["legacy_rows"] == EXPECTED["migrated"]
    assert f"{migrated['amount_cny']:.2f}" == EXPECTED["price_total"]
    quarantined = outcome[outcome["outcome"] == "quarantined"]
    assert (
        dict(zip(quarantined["reason"], quarantined["legacy_rows"], strict=True))
        == (EXPECTED["quarantine_reasons"])
    )
    # In the order the migration checks the reasons.
    assert list(quarantined["reason"]) == [
        reason for reason in QUARANTINE_REASONS if reason in EXPECTED["quarantine_reasons"]
    ]
    assert outcome["legacy_rows"].sum() == EXPECTED["legacy_rows"]


def test_quarantine_examples_show_the_legacy_rows(warehouses):
    examples = reports.quarantine_examples(warehouses.released, per_reason=2)
    expected = Counter(EXPECTED["quarantined"].values())
    assert Counter(examples["reason"]) == {reason: min(n, 2) for reason, n in expected.items()}
    for row in examples.itertuples():
        assert EXPECTED["quarantined"][str(row.legacy_id)] == row.reason


def test_labels_are_the_status_vocabulary(warehouses):
    status = reports.plan_status_distribution(warehouses.after)
    assert dict(zip(status["status"], status["status_label"], strict=True)) == {
        str(code): label for code, label in PLAN_STATUS_LABELS.items()
    }
    orders = reports.order_status_by_record_type(warehouses.after)
    assert set(zip(orders["record_type"], orders["record_type_label"], strict=True)) == {
        (int(kind), label) for kind, label in RECORD_TYPE_LABELS.items()
    }


def test_status_by_month_ends_where_the_as_of_distribution_is(warehouses):
    monthly = reports.plan_status_by_month(warehouses.released, "2026-03-01", "2026-05-01")
    assert sorted(set(monthly["month"].dt.strftime("%Y-%m"))) == ["2026-03", "2026-04", "2026-05"]
    # The end of May is the first instant of June 1st in Shanghai.
    may = monthly[monthly["month"].dt.month == 5]
    assert nonzero(may, "status", "plans") == EXPECTED["effective_status_counts"]
    orders = reports.order_status_by_month(warehouses.after, "2026-05-01", "2026-05-01")
    assert nonzero(orders, "status", "orders") == AFTER["order_status_counts"]


def test_plan_funnel_accounts_for_every_plan(warehouses):
    funnel = reports.plan_funnel(warehouses.after, as_of=FLOWS_RAN_AT)
    counts = AFTER["plan_status_counts"]
    assert list(funnel["stage_status"]) == ["applying", "success", "refund", "refunded"]
    assert list(funnel["reached"]) == [
        sum(counts.values()),
        sum(counts.get(s, 0) for s in ("success", "expired", "refund", "refunded")),
        counts.get("refund", 0) + counts.get("refunded", 0),
        counts.get("refunded", 0),
    ]
    assert funnel["stopped_here"].sum() == sum(counts.values())
    drop_outs = reports.plan_funnel_drop_outs(warehouses.after, as_of=FLOWS_RAN_AT)
    assert drop_outs.groupby("stage")["plans"].sum().tolist() == funnel["stopped_here"].tolist()


def test_refunds_by_month_add_up_to_the_refunded_plans_and_orders(warehouses):
    plans = reports.plan_refunds_by_month(warehouses.after, start="2010-01-01")
    assert plans["refunded_plans"].sum() == AFTER["plan_status_counts"]["refunded"]
    assert plans["refunding_plans"].sum() == AFTER["plan_status_counts"]["refund"]
    orders = reports.order_refunds_by_month(warehouses.after, start="2010-01-01")
    assert orders["refunded_orders"].sum() == AFTER["order_status_counts"]["refunded"]
    with warehouses.engine.connect() as connection:
        refunded = connection.execute(
            select(payment_record.c.refunded_amount, payment_record.c.actual_price).where(
                payment_record.c.order_status == "refunded"
            )
        ).all()
    returned = sum((amount or price for amount, price in refunded), Decimal(0))
    assert f"{orders['refunded_amount_cny'].sum():.2f}" == f"{returned:.2f}"
    assert ((orders["refund_rate"] >= 0) & (orders["refund_rate"] <= 1)).all()


def test_plans_expiring_counts_calendar_days_in_shanghai(warehouses):
    as_of = datetime(2031, 1, 15, tzinfo=SHANGHAI)
    expiring = reports.plans_expiring(warehouses.after, as_of, within_days=(30, 90))
    with warehouses.engine.connect() as connection:
        expire_times = (
            connection.execute(
                select(item_record.c.expire_time).where(
                    item_record.c.status.in_(["success", "cancel_refund"]),
                    item_record.c.expire_time > as_of,
                )
            )
            .scalars()
            .all()
        )
    local_days = [
        (moment.astimezone(SHANGHAI).date() - as_of.date()).days for moment in expire_times
    ]
    per_window = expiring.groupby("within_days")["plans"].sum().to_dict()
    assert per_window == {
        days: sum(1 for left in local_days if left <= days)
        for days in (30, 90)
        if any(left <= days for left in local_days)
    }
    assert per_window  # the fixture has plans expiring in early 2031


def add_orders(engine: Engine, orders: list[dict]) -> None:
    defaults = {
        "user_id": 1001,
        "record_type": 3,
        "actual_price": Decimal("10.00"),
        "pay_time": None,
    }
    with engine.begin() as connection:
        connection.execute(insert(payment_record), [defaults | order for order in orders])


def test_months_are_shanghai_months_even_when_the_process_runs_in_utc(
    engine, settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        add_orders(
            engine,
            [
                # 00:30 on February 1st in Shanghai, still January 31st in UTC.
                {
                    "order_id": "LATE-JANUARY-UTC",
                    "order_status": "paid",
                    "create_time": datetime(2025, 1, 31, 16, 30, tzinfo=UTC),
                    "pay_time": datetime(2025, 1, 31, 16, 35, tzinfo=UTC),
                },
                # 23:50 on January 31st in Shanghai.
                {
                    "order_id": "LAST-OF-JANUARY",
                    "order_status": "unpay",
                    "create_time": datetime(2025, 1, 31, 15, 50, tzinfo=UTC),
                },
            ],
        )
        warehouse = Warehouse(tmp_path / "warehouse.duckdb", settings.timezone)
        build_warehouse(warehouse, settings.database_url)

        refunds = reports.order_refunds_by_month(warehouse, "2025-01-01", "2025-02-01")
        assert refunds["month"].dt.strftime("%Y-%m").tolist() == ["2025-02"]
        monthly = reports.order_status_by_month(warehouse, "2025-01-01", "2025-02-01")
        shown = {
            (row.month.strftime("%Y-%m"), row.status): row.orders for row in monthly.itertuples()
        }
        assert shown == {
            ("2025-01", "unpay"): 1,
            ("2025-01", "paid"): 0,
            ("2025-02", "unpay"): 1,
            ("2025-02", "paid"): 1,
        }
    finally:
        monkeypatch.undo()
        time.tzset()


def test_unpaid_orders_are_aged_into_bands(engine, settings, tmp_path):
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    add_orders(
        engine,
        [
            {
                "order_id": "TEN-MINUTES",
                "order_status": "unpay",
                "create_time": now - timedelta(minutes=10),
            },
            {
                "order_id": "ONE-HOUR",
                "order_status": "unpay",
                "create_time": now - timedelta(hours=1),
            },
            {
                "order_id": "THREE-DAYS",
                "order_status": "unpay",
                "record_type": 1,
                "actual_price": Decimal("99.50"),
                "create_time": now - timedelta(days=3),
            },
            {"order_id": "PAID", "order_status": "paid", "create_time": now - timedelta(days=3)},
        ],
    )
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", settings.timezone)
    build_warehouse(warehouse, settings.database_url)

    ageing = reports.unpaid_order_ageing(warehouse, as_of=now)
    shown = {
        (row.age_band, row.record_type): (row.orders, row.amount_cny)
        for row in ageing.itertuples()
        if row.orders
    }
    assert shown == {
        ("under 30 min", 3): (1, 10.0),
        ("30 min to 2 h", 3): (1, 10.0),
        ("1 to 7 days", 1): (1, 99.5),
    }
    assert len(ageing) == 5 * len(RECORD_TYPE_LABELS)
