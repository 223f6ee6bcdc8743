"""GET /payment/service_list/: a user's plan records, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert

from tests.support import signed_in
from wallet.statuses import PlanStatus
from wallet.tables import item_record

URL = "/payment/service_list/"
CREATED = datetime(2025, 10, 19, 5, 24, 25, tzinfo=UTC)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
FAR_AHEAD = datetime(2034, 7, 13, 15, 59, 59, tzinfo=UTC)


def plan(**fields) -> dict:
    """A plan record of user 1, active until 2034, with `fields` changed."""
    return {
        "user_id": 1,
        "service_desc": "标准版",
        "price": Decimal("999.00"),
        "status": PlanStatus.SUCCESS.value,
        "create_time": CREATED,
        "active_time": CREATED,
        "expire_time": FAR_AHEAD,
        "order_id": None,
    } | fields


def add_plans(engine, *plans: dict) -> None:
    with engine.begin() as connection:
        for row in plans:
            connection.execute(insert(item_record).values(**row))


def list_plans(client, settings, query: str = "", user_id: int = 1) -> dict:
    response = client.get(f"{URL}?{query}", headers=signed_in(user_id, settings))
    assert response.status_code == 200, response.text
    return response.json()


def test_service_list_shows_every_field_formatted(client, engine, settings):
    add_plans(
        engine,
        plan(
            id=41,
            service_desc="企业版",
            price=Decimal("19999"),
            create_time=datetime(
                2025, 10, 19, 13, 24, 25, 987654, tzinfo=timezone(timedelta(hours=8))
            ),
            active_time=datetime(2025, 10, 19, 14, 57, 25, tzinfo=UTC),
            expire_time=FAR_AHEAD,
            order_id="PB20251019132425000141",
        ),
        plan(
            id=42,
            price=Decimal("0.5"),
            status=PlanStatus.APPLYING.value,
            create_time=CREATED - timedelta(days=1),
            active_time=None,
            expire_time=None,
        ),
    )

    assert list_plans(client, settings) == {
        "data": [
            {
                "id": 41,
                "service_desc": "企业版",
                "price": "19999.00",
                "status": "success",
                "status_display": "已开通",
                "create_time": "2025-10-19T05:24:25Z",
                "active_time": "2025-10-19T14:57:25Z",
                "expire_time": "2034-07-13T15:59:59Z",
                "order_id": "PB20251019132425000141",
            },
            {
                "id": 42,
                "service_desc": "标准版",
                "price": "0.50",
                "status": "applying",
                "status_display": "申请中",
                "create_time": "2025-10-18T05:24:25Z",
                "active_time": None,
                "expire_time": None,
                "order_id": None,
            },
        ],
        "is_paginated": False,
        "pages": 1,
        "current": 1,
        "count": 2,
        "per_page": 10,
    }


def test_service_list_answers_an_empty_first_page_when_the_user_has_no_plans(client, settings):
    assert list_plans(client, settings) == {
        "data": [],
        "is_paginated": False,
        "pages": 1,
        "current": 1,
        "count": 0,
        "per_page": 10,
    }


@pytest.fixture
def twenty_three_plans(engine) -> list[int]:
    """23 plans of user 1, one a day; their ids newest first."""
    add_plans(engine, *(plan(id=n, create_time=CREATED + timedelta(days=n)) for n in range(1, 24)))
    return list(range(23, 0, -1))


@pytest.mark.parametrize(
    ("query", "shown", "pages", "current", "per_page"),
    [
        ("", slice(0, 10), 3, 1, 10),
        ("page=2", slice(10, 20), 3, 2, 10),
        ("page=3", slice(20, 23), 3, 3, 10),
        ("page=2&per_page=5", slice(5, 10), 5, 2, 5),
        ("per_page=23", slice(0, 23), 1, 1, 23),
        ("per_page=22&page=2", slice(22, 23), 2, 2, 22),
        ("per_page=100", slice(0, 23), 1, 1, 100),
        ("per_page=1&page=23", slice(22, 23), 23, 23, 1),
    ],
)
def test_service_list_pages_through_the_plans(
    client, settings, twenty_three_plans, query, shown, pages, current, per_page
):
    body = list_plans(client, settings, query)

    assert [row["id"] for row in body["data"]] == twenty_three_plans[shown]
    assert (body["count"], body["pages"], body["current"], body["per_page"]) == (
        23,
        pages,
        current,
        per_page,
    )
    assert body["is_paginated"] is (pages > 1)


@pytest.mark.parametrize(("query", "current"), [("page=4", 4), ("page=1000000", 1_000_000)])
def test_service_list_answers_an_empty_page_past_the_last(
    client, settings, twenty_three_plans, query, current
):
    assert list_plans(client, settings, query) == {
        "data": [],
        "is_paginated": True,
        "pages": 3,
        "current": current,
        "count": 23,
        "per_page": 10,
    }


def test_service_list_shows_newest_first_and_breaks_ties_by_id_descending(client, engine, settings):
    add_plans(
        engine,
        plan(id=5, create_time=CREATED),
        plan(id=7, create_time=CREATED),
        plan(id=6, create_time=CREATED),
        plan(id=1, create_time=CREATED + timedelta(seconds=1)),
        plan(id=9, create_time=CREATED - timedelta(seconds=1)),
    )

    assert [row["id"] for row in list_plans(client, settings)["data"]] == [1, 7, 6, 5, 9]
    assert [row["id"] for row in list_plans(client, settings, "per_page=2&page=2")["data"]] == [
        6,
        5,
    ]


def test_service_list_shows_only_the_signed_in_users_plans(client, engine, settings):
    add_plans(
        engine,
        plan(id=1, user_id=1001),
        plan(id=2, user_id=1002),
        plan(id=3, user_id=1001, status=PlanStatus.DELETED.value),
        plan(id=4, user_id=1002, status=PlanStatus.DELETED.value),
    )

    def ids(query: str) -> list[int]:
        return [row["id"] for row in list_plans(client, settings, query, user_id=1001)["data"]]

    assert ids("") == [1]
    assert ids("status=deleted") == [3]
    assert ids("user_id=1002") == [1]
    assert ids("user_id=1002&status=deleted") == [3]
    assert [row["id"] for row in list_plans(client, settings, user_id=1003)["data"]] == []


def test_service_list_hides_deleted_by_default(client, engine, settings):
    add_plans(
        engine,
        plan(id=1),
        plan(id=2, status=PlanStatus.DELETED.value),
        plan(id=3, status=PlanStatus.CLOSED.value),
    )

    body = list_plans(client, settings)

    assert [row["id"] for row in body["data"]] == [3, 1]
    assert body["count"] == 2


def test_service_list_shows_deleted_plans_when_asked(client, engine, settings):
    add_plans(engine, plan(id=1), plan(id=2, status=PlanStatus.DELETED.value))

    body = list_plans(client, settings, "status=deleted")

    assert [(row["id"], row["status"], row["status_display"]) for row in body["data"]] == [
        (2, "deleted", "已删除")
    ]
    assert body["count"] == 1


def test_service_list_shows_a_success_plan_past_its_expire_time_as_expired(
    client, engine, settings
):
    add_plans(
        engine,
        plan(id=1, status=PlanStatus.SUCCESS.value, expire_time=LONG_AGO),
        plan(id=2, status=PlanStatus.CANCEL_REFUND.value, expire_time=LONG_AGO),
        plan(id=3, status=PlanStatus.REFUND.value, expire_time=LONG_AGO),
        plan(id=4, status=PlanStatus.SUCCESS.value, expire_time=FAR_AHEAD),
    )

    shown = [
        (row["id"], row["status"], row["status_display"])
        for row in list_plans(client, settings)["data"]
    ]

    assert shown == [
        (4, "success", "已开通"),
        (3, "refund", "退款中"),
        (2, "expired", "已过期"),
        (1, "expired", "已过期"),
    ]


# One plan stored in each status, active until 2034, plus two whose time has run out.
STORED = {
    1: (PlanStatus.APPLYING, FAR_AHEAD),
    2: (PlanStatus.SUCCESS, FAR_AHEAD),
    3: (PlanStatus.REFUND, FAR_AHEAD),
    4: (PlanStatus.CANCEL_REFUND, FAR_AHEAD),
    5: (PlanStatus.REFUNDED, FAR_AHEAD),
    6: (PlanStatus.CLOSED, FAR_AHEAD),
    7: (PlanStatus.CANCELED, FAR_AHEAD),
    8: (PlanStatus.DELETED, FAR_AHEAD),
    9: (PlanStatus.EXPIRED, LONG_AGO),
    10: (PlanStatus.SUCCESS, LONG_AGO),
    11: (PlanStatus.CANCEL_REFUND, LONG_AGO),
    12: (PlanStatus.APPLYING, LONG_AGO),
}
SHOWN_BY_STATUS = {
    PlanStatus.APPLYING: [12, 1],
    PlanStatus.SUCCESS: [2],
    PlanStatus.REFUND: [3],
    PlanStatus.CANCEL_REFUND: [4],
    PlanStatus.REFUNDED: [5],
    PlanStatus.CLOSED: [6],
    PlanStatus.CANCELED: [7],
    PlanStatus.DELETED: [8],
    PlanStatus.EXPIRED: [11, 10, 9],
}


@pytest.mark.parametrize("status", list(PlanStatus))
def test_service_list_filters_by_each_status(client, engine, settings, status):
    add_plans(
        engine,
        *(
            plan(id=plan_id, status=stored.value, expire_time=expire_time)
            for plan_id, (stored, expire_time) in STORED.items()
        ),
    )

    body = list_plans(client, settings, f"status={status.value}")

    assert [row["id"] for row in body["data"]] == SHOWN_BY_STATUS[status]
    assert {row["status"] for row in body["data"]} == {status.value}
    assert {row["status_display"] for row in body["data"]} == {status.label}
    assert body["count"] == len(SHOWN_BY_STATUS[status])


def test_service_list_without_a_status_shows_all_but_deleted(client, engine, settings):
    add_plans(
        engine,
        *(
            plan(id=plan_id, status=stored.value, expire_time=expire_time)
            for plan_id, (stored, expire_time) in STORED.items()
        ),
    )

    body = list_plans(client, settings, "per_page=100")

    assert [row["id"] for row in body["data"]] == [12, 11, 10, 9, 7, 6, 5, 4, 3, 2, 1]
