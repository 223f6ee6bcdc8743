"""GET /payment/payment_record/: a user's orders, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from itertools import product

import pytest
from sqlalchemy import insert

from tests.support import signed_in
from wallet.statuses import OrderStatus, RecordType
from wallet.tables import payment_record

URL = "/payment/payment_record/"
CREATED = datetime(2025, 10, 11, 3, 56, 52, tzinfo=UTC)


def order(order_id: str, **fields) -> dict:
    """A paid recharge of user 1, with `fields` changed."""
    return {
        "order_id": order_id,
        "user_id": 1,
        "record_type": RecordType.RECHARGE.value,
        "actual_price": Decimal("50.00"),
        "order_status": OrderStatus.PAID.value,
        "create_time": CREATED,
        "pay_time": CREATED + timedelta(minutes=20),
    } | fields


def add_orders(engine, *orders: dict) -> None:
    with engine.begin() as connection:
        for row in orders:
            connection.execute(insert(payment_record).values(**row))


def list_orders(client, settings, query: str = "", user_id: int = 1) -> dict:
    response = client.get(f"{URL}?{query}", headers=signed_in(user_id, settings))
    assert response.status_code == 200, response.text
    return response.json()


def order_ids(body: dict) -> list[str]:
    return [row["order_id"] for row in body["data"]]


def test_payment_record_shows_every_field_formatted(client, engine, settings):
    add_orders(
        engine,
        order(
            "PB20251011115652000141",
            record_type=RecordType.EXPENSE.value,
            actual_price=Decimal("19999"),
            order_status=OrderStatus.PAID.value,
            create_time=datetime(
                2025, 10, 11, 11, 56, 52, 500000, tzinfo=timezone(timedelta(hours=8))
            ),
            pay_time=datetime(2025, 10, 11, 4, 16, 0, tzinfo=UTC),
        ),
        order(
            "PB20251010115652000140",
            record_type=RecordType.INCOME.value,
            actual_price=Decimal("599.25"),
            order_status=OrderStatus.UNPAY.value,
            create_time=CREATED - timedelta(days=1),
            pay_time=None,
        ),
    )

    assert list_orders(client, settings) == {
        "data": [
            {
                "order_id": "PB20251011115652000141",
                "record_type": 3,
                "order_type": "支出",
                "actual_price": "19999.00",
                "order_status": "paid",
                "order_status_display": "交易成功",
                "create_time": "2025-10-11T03:56:52Z",
                "pay_time": "2025-10-11T04:16:00Z",
            },
            {
                "order_id": "PB20251010115652000140",
                "record_type": 4,
                "order_type": "收入",
                "actual_price": "599.25",
                "order_status": "unpay",
                "order_status_display": "进行中",
                "create_time": "2025-10-10T03:56:52Z",
                "pay_time": None,
            },
        ],
        "is_paginated": False,
        "pages": 1,
        "current": 1,
        "count": 2,
        "per_page": 10,
    }


@pytest.mark.parametrize("record_type", list(RecordType))
def test_payment_record_labels_each_record_type(client, engine, settings, record_type):
    add_orders(engine, order("PB1", record_type=record_type.value))

    (row,) = list_orders(client, settings)["data"]

    assert (row["record_type"], row["order_type"]) == (record_type.value, record_type.label)


def test_payment_record_pages_through_the_orders(client, engine, settings):
    add_orders(
        engine, *(order(f"PB{n:03}", create_time=CREATED + timedelta(hours=n)) for n in range(25))
    )

    first = list_orders(client, settings, "per_page=10")
    last = list_orders(client, settings, "per_page=10&page=3")
    past = list_orders(client, settings, "per_page=10&page=4")

    assert order_ids(first) == [f"PB{n:03}" for n in range(24, 14, -1)]
    assert order_ids(last) == ["PB004", "PB003", "PB002", "PB001", "PB000"]
    assert [
        (body["count"], body["pages"], body["current"], body["is_paginated"])
        for body in (first, last, past)
    ] == [(25, 3, 1, True), (25, 3, 3, True), (25, 3, 4, True)]
    assert past["data"] == []


def test_payment_record_is_not_paginated_when_one_page_holds_every_order(client, engine, settings):
    add_orders(engine, *(order(f"PB{n:03}") for n in range(10)))

    body = list_orders(client, settings)

    assert (body["count"], body["pages"], body["is_paginated"], len(body["data"])) == (
        10,
        1,
        False,
        10,
    )


def test_payment_record_shows_newest_first_and_breaks_ties_by_order_id_descending(
    client, engine, settings
):
    add_orders(
        engine,
        order("PB20250101000000000002", create_time=CREATED),
        order("PB20250101000000000003", create_time=CREATED),
        order("PB20250101000000000001", create_time=CREATED),
        order("PB20240101000000000009", create_time=CREATED + timedelta(seconds=1)),
        order("PB20260101000000000000", create_time=CREATED - timedelta(seconds=1)),
    )

    assert order_ids(list_orders(client, settings)) == [
        "PB20240101000000000009",
        "PB20250101000000000003",
        "PB20250101000000000002",
        "PB20250101000000000001",
        "PB20260101000000000000",
    ]


def test_payment_record_shows_only_the_signed_in_users_orders(client, engine, settings):
    add_orders(
        engine,
        order("PB-A1", user_id=1001),
        order("PB-B1", user_id=1002),
        order("PB-A2", user_id=1001, order_status=OrderStatus.DELETED.value),
        order("PB-B2", user_id=1002, order_status=OrderStatus.DELETED.value),
    )

    def seen(query: str) -> list[str]:
        return order_ids(list_orders(client, settings, query, user_id=1001))

    assert seen("") == ["PB-A1"]
    assert seen("order_status=deleted") == ["PB-A2"]
    assert seen("user_id=1002&record_type=1") == ["PB-A1"]
    assert order_ids(list_orders(client, settings, user_id=1003)) == []


def test_payment_record_hides_deleted_by_default(client, engine, settings):
    add_orders(
        engine,
        order("PB1"),
        order("PB2", order_status=OrderStatus.DELETED.value),
        order("PB3", order_status=OrderStatus.FAIL.value),
    )

    body = list_orders(client, settings)

    assert order_ids(body) == ["PB3", "PB1"]
    assert body["count"] == 2


# One order of each status for each record type, a minute apart.
EVERY_ORDER = [
    order(
        f"PB-{record_type.value}-{status.value}",
        record_type=record_type.value,
        order_status=status.value,
        create_time=CREATED + timedelta(minutes=minute),
    )
    for minute, (record_type, status) in enumerate(product(RecordType, OrderStatus))
]


def newest_first(**wanted) -> list[str]:
    """The ids of EVERY_ORDER whose fields have the `wanted` values, newest first."""
    return [
        row["order_id"]
        for row in reversed(EVERY_ORDER)
        if all(row[field] == value for field, value in wanted.items())
    ]


@pytest.mark.parametrize("order_status", list(OrderStatus))
def test_payment_record_filters_by_each_order_status(client, engine, settings, order_status):
    add_orders(engine, *EVERY_ORDER)

    body = list_orders(client, settings, f"order_status={order_status.value}")

    assert order_ids(body) == newest_first(order_status=order_status.value)
    assert order_ids(body) == [f"PB-{t}-{order_status.value}" for t in (4, 3, 2, 1)]
    assert {row["order_status_display"] for row in body["data"]} == {order_status.label}


@pytest.mark.parametrize("record_type", list(RecordType))
def test_payment_record_filters_by_record_type_and_hides_deleted(
    client, engine, settings, record_type
):
    add_orders(engine, *EVERY_ORDER)

    body = list_orders(client, settings, f"record_type={record_type.value}")

    shown = [
        order_id
        for order_id in newest_first(record_type=record_type.value)
        if not order_id.endswith("-deleted")
    ]
    assert len(shown) == len(OrderStatus) - 1
    assert order_ids(body) == shown
    assert body["count"] == len(shown)


def test_payment_record_without_filters_shows_every_type_but_not_deleted(client, engine, settings):
    add_orders(engine, *EVERY_ORDER)

    body = list_orders(client, settings, "per_page=100")

    assert order_ids(body) == [
        order_id for order_id in newest_first() if not order_id.endswith("-deleted")
    ]
    assert body["count"] == len(RecordType) * (len(OrderStatus) - 1)


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("record_type=3&order_status=paid", ["PB-3-paid"]),
        ("order_status=refund&record_type=2", ["PB-2-refund"]),
        ("record_type=3&order_status=deleted", ["PB-3-deleted"]),
        ("record_type=1&order_status=unpay", ["PB-1-unpay"]),
    ],
)
def test_payment_record_combines_record_type_and_order_status(
    client, engine, settings, query, shown
):
    add_orders(engine, *EVERY_ORDER)

    body = list_orders(client, settings, query)

    assert (order_ids(body), body["count"]) == (shown, 1)
