"""Status transitions: the allowed moves, the log, each scheduled move, and racing runs."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select

from pipelines import scheduled_moves
from wallet.statuses import OrderStatus, PlanStatus
from wallet.tables import item_record, payment_record, refund_settlement, transition_log
from wallet.transitions import (
    ORDER_MOVES,
    PLAN_MOVES,
    Entity,
    TransitionNotAllowed,
    is_allowed,
    move,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ACTOR = "test"
HOUR = timedelta(hours=1)


def add_plans(engine, plans: list[dict]) -> None:
    defaults = {
        "user_id": 1001,
        "service_desc": "标准版",
        "price": Decimal("1999.00"),
        "create_time": NOW - timedelta(days=400),
    }
    with engine.begin() as connection:
        connection.execute(insert(item_record), [defaults | plan for plan in plans])


def add_orders(engine, orders: list[dict]) -> None:
    defaults = {
        "user_id": 1001,
        "record_type": 3,
        "actual_price": Decimal("1999.00"),
        "create_time": NOW - timedelta(days=1),
    }
    with engine.begin() as connection:
        connection.execute(insert(payment_record), [defaults | order for order in orders])


def statuses(engine, entity: Entity) -> dict:
    with engine.connect() as connection:
        return dict(connection.execute(select(entity.key, entity.status)).all())


def log_rows(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(transition_log).order_by(transition_log.c.id)).all()


def run_until_done(batch) -> int:
    moved = 0
    while step := batch().total:
        moved += step
    return moved


def test_every_status_has_a_row_in_the_table_of_moves():
    assert set(PLAN_MOVES) == set(PlanStatus)
    assert set(ORDER_MOVES) == set(OrderStatus)
    assert not PLAN_MOVES[PlanStatus.DELETED]
    assert not ORDER_MOVES[OrderStatus.DELETED]


@pytest.mark.parametrize(
    ("entity", "source", "target", "allowed"),
    [
        (Entity.PLAN, "success", "expired", True),
        (Entity.PLAN, "cancel_refund", "expired", True),
        (Entity.PLAN, "refund", "refunded", True),
        (Entity.PLAN, "refunded", "success", False),
        (Entity.PLAN, "expired", "success", False),
        (Entity.PLAN, "deleted", "applying", False),
        (Entity.ORDER, "unpay", "closed", True),
        (Entity.ORDER, "refunded", "paid", False),
        (Entity.ORDER, "refund", "unpay", False),
        (Entity.ORDER, "nonsense", "paid", False),
    ],
)
def test_is_allowed_follows_the_table(entity, source, target, allowed):
    assert is_allowed(entity, source, target) is allowed


def test_move_refuses_a_refunded_plan_back_to_success_and_writes_nothing(engine):
    add_plans(engine, [{"status": "refunded"}])

    with (
        pytest.raises(TransitionNotAllowed, match="from refunded to success"),
        engine.begin() as connection,
    ):
        move(connection, Entity.PLAN, "refunded", "success", actor=ACTOR, reason="test")

    assert list(statuses(engine, Entity.PLAN).values()) == ["refunded"]
    assert log_rows(engine) == []


def test_expire_plans_moves_only_due_plans_and_logs_each_with_its_expire_time(engine):
    due = NOW - timedelta(minutes=1)
    add_plans(
        engine,
        [
            {"id": 1, "status": "success", "expire_time": due},
            {"id": 2, "status": "cancel_refund", "expire_time": NOW},
            {"id": 3, "status": "success", "expire_time": NOW + timedelta(seconds=1)},
            {"id": 4, "status": "refund", "expire_time": due},
            {"id": 5, "status": "success", "expire_time": None},
        ],
    )

    counts = scheduled_moves.expire_plans_batch(engine, NOW, 100, "expire-plans/run-1")

    assert counts.as_dict() == {"plan cancel_refund -> expired": 1, "plan success -> expired": 1}
    assert statuses(engine, Entity.PLAN) == {
        1: "expired",
        2: "expired",
        3: "success",
        4: "refund",
        5: "success",
    }
    logged = {
        (row.entity_id, row.from_status, row.to_status, row.business_time, row.actor)
        for row in log_rows(engine)
    }
    assert logged == {
        ("1", "success", "expired", due, "expire-plans/run-1"),
        ("2", "cancel_refund", "expired", NOW, "expire-plans/run-1"),
    }


def test_expire_plans_again_moves_nothing_and_logs_nothing(engine):
    add_plans(engine, [{"status": "success", "expire_time": NOW - timedelta(days=1)}])
    scheduled_moves.expire_plans_batch(engine, NOW, 100, ACTOR)

    again = scheduled_moves.expire_plans_batch(engine, NOW, 100, ACTOR)

    assert again.total == 0
    assert len(log_rows(engine)) == 1


def test_close_unpaid_orders_respects_the_timeout(engine):
    timeout = timedelta(minutes=30)
    add_orders(
        engine,
        [
            {"order_id": "OLD", "order_status": "unpay", "create_time": NOW - timeout},
            {
                "order_id": "NEW",
                "order_status": "unpay",
                "create_time": NOW - timedelta(minutes=29),
            },
            {"order_id": "PAID", "order_status": "paid", "create_time": NOW - timedelta(days=9)},
        ],
    )

    counts = scheduled_moves.close_unpaid_orders_batch(engine, NOW, timeout, 100, ACTOR)

    assert counts.as_dict() == {"order unpay -> closed": 1}
    assert statuses(engine, Entity.ORDER) == {"OLD": "closed", "NEW": "unpay", "PAID": "paid"}
    (logged,) = log_rows(engine)
    assert (logged.entity, logged.entity_id, logged.business_time) == ("order", "OLD", NOW)


def test_applying_plans_end_the_way_their_order_ended(engine):
    add_orders(
        engine,
        [
            {"order_id": "C", "order_status": "closed"},
            {"order_id": "F", "order_status": "fail"},
            {"order_id": "X", "order_status": "canceled"},
            {"order_id": "P", "order_status": "paid"},
        ],
    )
    add_plans(
        engine,
        [
            {"id": 1, "status": "applying", "order_id": "C"},
            {"id": 2, "status": "applying", "order_id": "F"},
            {"id": 3, "status": "applying", "order_id": "X"},
            {"id": 4, "status": "applying", "order_id": "P"},
            {"id": 5, "status": "applying", "order_id": None},
            {"id": 6, "status": "success", "order_id": "C"},
        ],
    )

    counts = scheduled_moves.end_plans_of_ended_orders_batch(engine, 100, ACTOR)

    assert counts.as_dict() == {"plan applying -> canceled": 1, "plan applying -> closed": 2}
    assert statuses(engine, Entity.PLAN) == {
        1: "closed",
        2: "closed",
        3: "canceled",
        4: "applying",
        5: "applying",
        6: "success",
    }


def add_settlements(engine, settlements: list[tuple[str, str, int]]) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(refund_settlement),
            [
                {
                    "order_id": order_id,
                    "refund_amount": Decimal(amount),
                    "settled_at": NOW - timedelta(hours=line),
                    "source_file": "refunds.csv",
                    "source_line": line,
                    "imported_at": NOW,
                }
                for order_id, amount, line in settlements
            ],
        )


def test_settle_refunds_applies_fitting_settlements_and_rejects_the_rest(engine):
    add_orders(
        engine,
        [
            {"order_id": "R1", "order_status": "refund", "actual_price": Decimal("100.00")},
            {"order_id": "R2", "order_status": "refund", "actual_price": Decimal("100.00")},
            {"order_id": "R3", "order_status": "refund", "actual_price": Decimal("100.00")},
            {"order_id": "PAID", "order_status": "paid"},
        ],
    )
    add_plans(
        engine,
        [
            {"id": 1, "status": "refund", "order_id": "R1"},
            {"id": 2, "status": "success", "order_id": "R1"},
            {"id": 3, "status": "refund", "order_id": "R2"},
        ],
    )
    add_settlements(
        engine,
        [
            ("R1", "60.00", 2),
            ("R2", "100.00", 3),
            ("NOPE", "1.00", 4),
            ("PAID", "1.00", 5),
            ("R3", "100.01", 6),
            ("R3", "0.00", 7),
            ("R1", "40.00", 8),
        ],
    )

    batch = scheduled_moves.settle_refunds_batch(engine, NOW, 3, ACTOR)
    rest = scheduled_moves.settle_refunds_batch(engine, NOW, 100, ACTOR)
    nothing = scheduled_moves.settle_refunds_batch(engine, NOW, 100, ACTOR)

    assert (batch.applied, rest.applied, nothing.processed) == (2, 0, 0)
    assert sorted(batch.rejected_lines + rest.rejected_lines) == [
        ("refunds.csv", 4, "unknown_order"),
        ("refunds.csv", 5, "not_in_refund"),
        ("refunds.csv", 6, "bad_amount"),
        ("refunds.csv", 7, "bad_amount"),
        ("refunds.csv", 8, "not_in_refund"),
    ]
    assert statuses(engine, Entity.ORDER) == {
        "R1": "refunded",
        "R2": "refunded",
        "R3": "refund",
        "PAID": "paid",
    }
    assert statuses(engine, Entity.PLAN) == {1: "refunded", 2: "success", 3: "refunded"}
    with engine.connect() as connection:
        r1 = connection.execute(
            select(payment_record).where(payment_record.c.order_id == "R1")
        ).one()
        pending = connection.execute(
            select(func.count()).where(refund_settlement.c.status == "pending")
        ).scalar_one()
    assert (r1.refunded_amount, r1.settled_at) == (Decimal("60.00"), NOW - timedelta(hours=2))
    assert pending == 0
    logged = {(row.entity_id, row.business_time) for row in log_rows(engine)}
    assert logged == {
        ("R1", NOW - timedelta(hours=2)),
        ("R2", NOW - timedelta(hours=3)),
        ("1", NOW - timedelta(hours=2)),
        ("3", NOW - timedelta(hours=3)),
    }


@pytest.mark.timeout(240)
def test_racing_runs_move_each_row_once_and_log_it_once(engine):
    plans = 3_000
    add_plans(
        engine,
        [
            {"id": n, "status": "success" if n % 3 else "cancel_refund", "expire_time": NOW}
            for n in range(1, plans + 1)
        ],
    )
    add_orders(
        engine,
        [
            {
                "order_id": f"U{n:05d}",
                "order_status": "unpay",
                "create_time": NOW - timedelta(hours=1),
            }
            for n in range(2_000)
        ],
    )
    moved: list[int] = []
    errors: list[BaseException] = []

    def run(batch) -> None:
        try:
            moved.append(run_until_done(batch))
        except BaseException as error:
            errors.append(error)

    expire = lambda: scheduled_moves.expire_plans_batch(engine, NOW, 200, ACTOR)  # noqa: E731
    close = lambda: scheduled_moves.close_unpaid_orders_batch(  # noqa: E731
        engine, NOW, timedelta(minutes=30), 150, ACTOR
    )
    runs = [threading.Thread(target=run, args=(batch,)) for batch in (expire, expire, close, close)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()

    assert errors == []
    assert sum(moved) == plans + 2_000
    assert set(statuses(engine, Entity.PLAN).values()) == {"expired"}
    assert set(statuses(engine, Entity.ORDER).values()) == {"closed"}
    with engine.connect() as connection:
        per_row = connection.execute(
            select(transition_log.c.entity, transition_log.c.entity_id, func.count()).group_by(
                transition_log.c.entity, transition_log.c.entity_id
            )
        ).all()
    assert len(per_row) == plans + 2_000
    assert {count for _, _, count in per_row} == {1}
