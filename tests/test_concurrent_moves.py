"""The transition flows and the VIP migration running at once on one database.

The migration writes plan records batch by batch while expire-plans (twice, racing itself),
close-unpaid-orders and settle-refunds keep running over the same tables, as the schedules
would run them during a release. Afterwards every invariant that `wallet.transitions` states
must hold, checked one by one against the tables and the transition log. `make test` runs
the batches in threads of this process; `make soak` runs the real commands as processes.
"""

import csv
import subprocess
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from pipelines import scheduled_moves, vip_migration
from pipelines.demo_data import write_demo_export
from pipelines.importers import import_legacy, import_orders, import_refunds
from tests.support import WALLET
from wallet.tables import (
    item_record,
    legacy_user_vip,
    payment_record,
    refund_settlement,
    transition_log,
)
from wallet.transitions import INVARIANTS, Entity, is_allowed

TIMEOUT = timedelta(minutes=30)
BATCH = 40


def load_release_data(engine, directory: Path, users: int) -> dict[str, str]:
    """A generated legacy export and its orders, plus a gateway file settling refunds.

    Returns each order's status as imported.
    """
    write_demo_export(directory, users=users, seed=20261204)
    import_legacy(engine, directory)
    import_orders(engine, directory / "payment_record.csv")
    with engine.connect() as connection:
        orders = connection.execute(
            select(
                payment_record.c.order_id,
                payment_record.c.order_status,
                payment_record.c.actual_price,
            ).order_by(payment_record.c.order_id)
        ).all()
    with (directory / "refunds.csv").open("w", newline="", encoding="utf-8") as file:
        out = csv.writer(file)
        out.writerow(["order_id", "refund_amount", "settled_at"])
        for number, order in enumerate(orders):
            if order.order_status == "refund" and number % 5:
                amount = order.actual_price if number % 7 else order.actual_price + 1
                out.writerow([order.order_id, amount, "2026-12-01T10:00:00Z"])
            elif number % 97 == 0:
                out.writerow([order.order_id, "1.00", "2026-12-01T10:00:00Z"])
        out.writerow(["NO-SUCH-ORDER", "1.00", "2026-12-01T10:00:00Z"])
    import_refunds(engine, directory / "refunds.csv")
    return {order.order_id: order.order_status for order in orders}


# --- the invariants, each checked on its own ---------------------------------------------------


def migrated_statuses(engine) -> dict[str, str]:
    """Each plan record's status as the migration wrote it, from its legacy row."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(item_record.c.id.label("plan_record_id"), *vip_migration.LEGACY_COLUMNS).join(
                legacy_user_vip, legacy_user_vip.c.id == item_record.c.legacy_id
            )
        ).all()
    return {str(row.plan_record_id): vip_migration.plan_status(row._mapping).value for row in rows}


def check_invariants(engine, initial: dict[tuple[str, str], str], as_of: datetime) -> Counter:
    """Every invariant of `wallet.transitions.INVARIANTS`; returns the moves per status pair."""
    with engine.connect() as connection:
        log = connection.execute(select(transition_log).order_by(transition_log.c.id)).all()
        plans = {str(row.id): row for row in connection.execute(select(item_record))}
        orders = {row.order_id: row for row in connection.execute(select(payment_record))}
        settlements = connection.execute(select(refund_settlement)).all()
    stored = {("plan", key): row.status for key, row in plans.items()}
    stored |= {("order", key): row.order_status for key, row in orders.items()}
    assert set(initial) == set(stored)
    checked = set()

    # allowed: every logged move is in the table of allowed moves.
    checked.add("allowed")
    assert [
        row for row in log if not is_allowed(Entity(row.entity), row.from_status, row.to_status)
    ] == []

    # logged: each row's log, in order, runs from the status it was written with to the one it
    # has now, one log row per change; with these flows a row moves at most once.
    checked.add("logged")
    by_row = defaultdict(list)
    for row in log:
        by_row[(row.entity, row.entity_id)].append(row)
    for key, status in stored.items():
        chain = [initial[key]] + [row.to_status for row in by_row.get(key, [])]
        froms = [row.from_status for row in by_row.get(key, [])]
        assert froms == chain[:-1], f"{key}: the log is not a chain from {initial[key]}"
        assert chain[-1] == status, f"{key}: the log ends at {chain[-1]}, the row is {status}"
        assert len(by_row.get(key, [])) <= 1, f"{key} moved {len(by_row[key])} times"
    assert set(by_row) <= set(stored)

    # settled: a settlement's refund is recorded on the order it refunded, within its amount.
    checked.add("settled")
    applied = [row for row in settlements if row.status == "applied"]
    assert applied, "no settlement was applied: the test data lost its point"
    assert len({row.order_id for row in applied}) == len(applied)
    for settlement in applied:
        order = orders[settlement.order_id]
        assert order.order_status == "refunded"
        assert (order.refunded_amount, order.settled_at) == (
            settlement.refund_amount,
            settlement.settled_at,
        )
        assert Decimal(0) < order.refunded_amount <= order.actual_price
    assert {row.status for row in settlements} <= {"applied", "rejected"}

    # refunded_plans: no plan is left in refund once a settlement refunded its order.
    checked.add("refunded_plans")
    settled_orders = {row.order_id for row in applied}
    assert [
        key
        for key, row in plans.items()
        if row.status == "refund" and row.order_id in settled_orders
    ] == []

    # no_way_back: nothing leaves deleted, and refunded never returns to success or paid.
    checked.add("no_way_back")
    assert [row for row in log if row.from_status == "deleted"] == []
    assert [
        row
        for row in log
        if row.from_status == "refunded" or (row.to_status in ("success", "paid"))
    ] == []

    # due: once the flows ran after the last write, nothing due is left unmoved.
    checked.add("due")
    assert [
        key
        for key, row in plans.items()
        if row.status in ("success", "cancel_refund")
        and row.expire_time is not None
        and row.expire_time <= as_of
    ] == []
    assert [
        key
        for key, row in orders.items()
        if row.order_status == "unpay" and row.create_time <= as_of - TIMEOUT
    ] == []
    ended = {
        key for key, row in orders.items() if row.order_status in ("closed", "fail", "canceled")
    }
    assert [
        key for key, row in plans.items() if row.status == "applying" and row.order_id in ended
    ] == []

    assert checked == set(INVARIANTS)
    return Counter((row.entity, row.from_status, row.to_status) for row in log)


# --- running them at once ----------------------------------------------------------------------


def run_together(engine, as_of: datetime) -> list[BaseException]:
    """The migration in one thread, the flows' batches in four others until it is done."""
    migration_done = threading.Event()
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            _, after = vip_migration.migrate_batch(engine, None, BATCH)
            while after is not None:
                _, after = vip_migration.migrate_batch(engine, after, BATCH)
        finally:
            migration_done.set()

    def keep_running(name: str, batch) -> None:
        # As the schedules do: again and again while the migration writes, then once more.
        final_pass = False
        while True:
            final_pass = migration_done.is_set()
            while batch():
                pass
            if final_pass:
                return
            time.sleep(0.005)

    def guarded(target, *args):
        def run() -> None:
            try:
                target(*args)
            except BaseException as error:
                errors.append(error)

        return threading.Thread(target=run, name=getattr(target, "__name__", "flow"))

    actor = "concurrent test"

    def expire() -> int:
        return scheduled_moves.expire_plans_batch(engine, as_of, BATCH, actor).total

    def close() -> int:
        return (
            scheduled_moves.close_unpaid_orders_batch(engine, as_of, TIMEOUT, BATCH, actor).total
            + scheduled_moves.end_plans_of_ended_orders_batch(engine, BATCH, actor).total
        )

    def settle() -> int:
        return scheduled_moves.settle_refunds_batch(engine, as_of, BATCH, actor).processed

    threads = [
        guarded(migrate),
        guarded(keep_running, "expire-plans", expire),
        guarded(keep_running, "expire-plans", expire),
        guarded(keep_running, "close-unpaid-orders", close),
        guarded(keep_running, "settle-refunds", settle),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    return errors


def initial_statuses(engine, imported_orders: dict[str, str]) -> dict[tuple[str, str], str]:
    initial = {("plan", key): status for key, status in migrated_statuses(engine).items()}
    return initial | {("order", key): status for key, status in imported_orders.items()}


@pytest.mark.timeout(240)
def test_flows_and_migration_at_once_move_each_row_once_and_keep_every_invariant(engine, tmp_path):
    imported_orders = load_release_data(engine, tmp_path / "export", users=1_000)
    as_of = datetime.now(UTC)

    errors = run_together(engine, as_of)

    assert errors == []
    moves = check_invariants(engine, initial_statuses(engine, imported_orders), as_of)
    # Every kind of move these flows make happened, so each invariant was really exercised.
    assert {
        ("plan", "success", "expired"),
        ("plan", "applying", "closed"),
        ("plan", "refund", "refunded"),
        ("order", "unpay", "closed"),
        ("order", "refund", "refunded"),
    } <= set(moves)


def start(env: dict, log: Path, *args: str) -> subprocess.Popen:
    with log.open("a") as output:
        return subprocess.Popen([WALLET, *args], env=env, stdout=output, stderr=subprocess.STDOUT)


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_flow_commands_and_the_migration_command_at_once_keep_every_invariant(
    engine, cli_env, tmp_path
):
    imported_orders = load_release_data(engine, tmp_path / "export", users=6_000)
    log = tmp_path / "commands.log"
    migration = start(cli_env, log, "migrate-vip", "--batch-size", "10")
    flow_runs: Counter = Counter()
    while migration.poll() is None:
        runs = [
            start(cli_env, log, "flows", "run", name)
            for name in ("expire-plans", "close-unpaid-orders", "settle-refunds")
        ]
        for run in runs:
            assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
        flow_runs["during the migration"] += len(runs)
    assert migration.returncode == 0, log.read_text()[-3000:]
    as_of = datetime.now(UTC)
    for name in ("expire-plans", "close-unpaid-orders", "settle-refunds"):
        assert start(cli_env, log, "flows", "run", name).wait(timeout=300) == 0
        flow_runs["after it"] += 1

    moves = check_invariants(engine, initial_statuses(engine, imported_orders), as_of)

    print(f"\nflow runs: {dict(flow_runs)}; moves: {dict(moves)}")
    assert flow_runs["during the migration"] >= 3
    assert ("plan", "refund", "refunded") in moves
