"""Who sees what: a token shows its own user's rows and nobody else's, whatever the filter and
page; anything but a valid token is 401; and the server will not start on a weak key."""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import insert

from tests.support import (
    JWT_SECRET,
    ServedApi,
    free_port,
    run_wallet,
    serve_environment,
    signed_in,
)
from wallet.settings import Settings
from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.tables import item_record, payment_record
from wallet_api.auth import issue_token
from wallet_api.main import create_app

PLANS = "/payment/service_list/"
ORDERS = "/payment/payment_record/"
SHARED_DATABASE = examples(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- a token for user A never shows a row of user B ---------------------------------------------

CREATED = datetime(2025, 10, 19, 5, 24, 25, tzinfo=UTC)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
FAR_AHEAD = datetime(2034, 7, 13, tzinfo=UTC)
USERS = range(1001, 1041)
# Signed in, but with no rows: one user who exists nowhere, one at the edge of the id range.
STRANGERS = (999, 2**63 - 1)


@dataclass
class Crowd:
    """Rows of many users, as inserted: plan records and orders, each a dict of its columns."""

    plans: list[dict]
    orders: list[dict]


def shown_status(plan: dict) -> str:
    """The status the API shows: success or cancel_refund past its expire_time is expired."""
    running = plan["status"] in (PlanStatus.SUCCESS, PlanStatus.CANCEL_REFUND)
    if running and plan["expire_time"] is not None and plan["expire_time"] <= datetime.now(UTC):
        return PlanStatus.EXPIRED.value
    return plan["status"]


@pytest.fixture
def crowd(engine) -> Crowd:
    """Forty users with 0-12 plans and 0-12 orders each, statuses, types and times at random
    (seeded), created within the same hour so that users' rows interleave and tie."""
    rng = random.Random(20261204)
    plans, orders = [], []
    for user_id in USERS:
        for _ in range(rng.randint(0, 12)):
            plans.append(
                {
                    "id": len(plans) + 1,
                    "user_id": user_id,
                    "service_desc": "标准版",
                    "price": Decimal("999.00"),
                    "status": rng.choice(list(PlanStatus)).value,
                    "create_time": CREATED + timedelta(minutes=rng.randint(0, 60)),
                    "active_time": CREATED,
                    "expire_time": rng.choice([None, LONG_AGO, FAR_AHEAD]),
                    "order_id": None,
                }
            )
        for _ in range(rng.randint(0, 12)):
            orders.append(
                {
                    "order_id": f"PB{rng.randrange(10**6):06}-{len(orders)}",
                    "user_id": user_id,
                    "record_type": rng.choice(list(RecordType)).value,
                    "actual_price": Decimal("50.00"),
                    "order_status": rng.choice(list(OrderStatus)).value,
                    "create_time": CREATED + timedelta(minutes=rng.randint(0, 60)),
                    "pay_time": None,
                }
            )
    with engine.begin() as connection:
        connection.execute(insert(item_record), plans)
        connection.execute(insert(payment_record), orders)
    return Crowd(plans, orders)


def expected_page(rows: list, page: int, per_page: int) -> tuple[list, int, int]:
    """The rows of one page, how many rows on all pages, and how many pages."""
    page_count = max(1, -(-len(rows) // per_page))
    return rows[(page - 1) * per_page : page * per_page], len(rows), page_count


user_ids = st.sampled_from([*USERS, *STRANGERS])
pages = st.integers(min_value=1, max_value=4)
per_pages = st.one_of(st.integers(min_value=1, max_value=5), st.just(100))


@SHARED_DATABASE
@given(
    user_id=user_ids,
    status=st.sampled_from([None, *PlanStatus]),
    page=pages,
    per_page=per_pages,
)
def test_service_list_shows_exactly_the_signed_in_users_plans(
    client, settings, crowd, user_id, status, page, per_page
):
    params = {"page": page, "per_page": per_page} | ({"status": status} if status else {})

    response = client.get(PLANS, params=params, headers=signed_in(user_id, settings))

    own = [plan for plan in crowd.plans if plan["user_id"] == user_id]
    matching = [
        plan
        for plan in own
        if (shown_status(plan) == status if status else shown_status(plan) != "deleted")
    ]
    matching.sort(key=lambda plan: (plan["create_time"], plan["id"]), reverse=True)
    rows, count, page_count = expected_page(matching, page, per_page)
    body = response.json()
    assert response.status_code == 200, body
    assert [(row["id"], row["status"]) for row in body["data"]] == [
        (plan["id"], shown_status(plan)) for plan in rows
    ]
    assert (body["count"], body["pages"]) == (count, page_count)


@SHARED_DATABASE
@given(
    user_id=user_ids,
    record_type=st.sampled_from([None, *RecordType]),
    order_status=st.sampled_from([None, *OrderStatus]),
    page=pages,
    per_page=per_pages,
)
def test_payment_record_shows_exactly_the_signed_in_users_orders(
    client, settings, crowd, user_id, record_type, order_status, page, per_page
):
    params = {"page": page, "per_page": per_page}
    params |= {"record_type": record_type.value} if record_type else {}
    params |= {"order_status": order_status} if order_status else {}
    # A user_id parameter is no way to see another user's rows: it is not a parameter at all.
    params["user_id"] = USERS[0]

    response = client.get(ORDERS, params=params, headers=signed_in(user_id, settings))

    matching = [
        order
        for order in crowd.orders
        if order["user_id"] == user_id
        and (record_type is None or order["record_type"] == record_type)
        and (
            order["order_status"] == order_status
            if order_status
            else order["order_status"] != "deleted"
        )
    ]
    matching.sort(key=lambda order: (order["create_time"], order["order_id"]), reverse=True)
    rows, count, page_count = expected_page(matching, page, per_page)
    body = response.json()
    assert response.status_code == 200, body
    assert [row["order_id"] for row in body["data"]] == [order["order_id"] for order in rows]
    assert (body["count"], body["pages"]) == (count, page_count)


def test_every_user_of_the_crowd_sees_their_own_rows_and_only_those(client, settings, crowd):
    for user_id in USERS:
        headers = signed_in(user_id, settings)
        plans = client.get(PLANS, params={"per_page": 100}, headers=headers).json()
        orders = client.get(ORDERS, params={"per_page": 100}, headers=headers).json()

        assert {row["id"] for row in plans["data"]} == {
            plan["id"]
            for plan in crowd.plans
            if plan["user_id"] == user_id and plan["status"] != "deleted"
        }
        assert {row["order_id"] for row in orders["data"]} == {
            order["order_id"]
            for order in crowd.orders
            if order["user_id"] == user_id and order["order_status"] != "deleted"
        }


# --- anything but a valid token is 401 with a JSON body -----------------------------------------

# What may follow `Authorization:` on the wire: printable ASCII.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)


def assert_refused(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert set(response.json()) == {"detail"}
    assert isinstance(response.json()["detail"], str)


@SHARED_DATABASE
@given(url=st.sampled_from([PLANS, ORDERS]), authorization=header_text)
def test_lists_refuse_any_authorization_header_that_is_not_a_valid_token(
    client, url, authorization
):
    response = client.get(url, headers={"Authorization": authorization})

    assert_refused(response)


@SHARED_DATABASE
@given(url=st.sampled_from([PLANS, ORDERS]), token=header_text)
def test_lists_refuse_any_bearer_text_that_is_not_a_valid_token(client, url, token):
    response = client.get(url, headers={"Authorization": f"Bearer {token}"})

    assert_refused(response)


# What can be wrong with a token; a token with none of these must sign in.
FLAWS = ("other_key", "other_algorithm", "bad_sub", "no_sub", "past_exp", "bad_exp", "no_exp")
OTHER_KEY = JWT_SECRET[::-1]
# Any JSON value a forged or broken token might carry as its `sub`, but a user id string.
not_a_user_id = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=20).map(lambda text: f"user {text}"),
    st.sampled_from(["", "0", "-5", "01", " 1", "1 ", "١", "1.5", "1e3", "9223372036854775808"]),
)
# PyJWT reads any exp that int() takes (3.5, "17"); these it cannot.
not_a_time = st.sampled_from([None, [], {}, "", "soon", "2030-01-01T00:00:00Z"])


@SHARED_DATABASE
@given(
    flaws=st.one_of(st.just(frozenset()), st.frozensets(st.sampled_from(FLAWS), min_size=1)),
    user_id=st.integers(min_value=1, max_value=2**63 - 1),
    seconds=st.integers(min_value=5, max_value=10**6),  # clear of the request's own second
    bad_sub=not_a_user_id,
    bad_exp=not_a_time,
    other_algorithm=st.sampled_from(["HS384", "HS512", "none"]),
)
def test_lists_accept_a_token_only_when_nothing_is_wrong_with_it(
    client, flaws, user_id, seconds, bad_sub, bad_exp, other_algorithm
):
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": str(user_id), "exp": now + seconds}
    if "bad_sub" in flaws:
        claims["sub"] = bad_sub
    if "past_exp" in flaws:
        claims["exp"] = now - seconds
    if "bad_exp" in flaws:
        claims["exp"] = bad_exp
    for claim in ("sub", "exp"):
        if f"no_{claim}" in flaws:
            del claims[claim]
    key = OTHER_KEY if "other_key" in flaws else JWT_SECRET
    algorithm = other_algorithm if "other_algorithm" in flaws else "HS256"
    if algorithm != "HS256":
        key = None if algorithm == "none" else key * 2  # HS384 and HS512 want longer keys
    token = jwt.encode(claims, key, algorithm=algorithm)

    response = client.get(PLANS, headers={"Authorization": f"Bearer {token}"})

    if flaws:
        assert_refused(response)
    else:
        assert (response.status_code, response.json()["count"]) == (200, 0)


# --- the server does not start on a weak key ----------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        ("s" * 31, "error: WALLET_JWT_SECRET is 31 bytes; it must be at least 32"),
        ("密钥" * 5, "error: WALLET_JWT_SECRET is 30 bytes; it must be at least 32"),
        ("", "error: WALLET_JWT_SECRET is 0 bytes; it must be at least 32"),
        (None, "error: WALLET_JWT_SECRET is not set; set it to a random string of at least 32"),
    ],
    ids=["31-bytes", "10-characters-30-bytes", "empty", "not-set"],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wallet_serve_refuses_to_start_on_a_weak_secret_outside_demo_mode(
    engine, settings, tmp_path, secret, said
):
    env = serve_environment(settings.database_url, tmp_path / "var", WALLET_ENV="production")
    if secret is None:
        del env["WALLET_JWT_SECRET"]
    else:
        env["WALLET_JWT_SECRET"] = secret

    result = run_wallet(env, "serve", "--port", str(free_port()), timeout=30)

    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(said)
    assert "Uvicorn running" not in result.stderr + result.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_create_app_in_demo_mode_without_a_secret_signs_with_the_generated_one(engine, tmp_path):
    demo = Settings(
        env="demo",
        database_url=str(engine.url),
        jwt_secret=None,
        var_dir=tmp_path / "var",
        _env_file=None,
    )

    with TestClient(create_app(demo)) as client:
        response = client.get(PLANS, headers=signed_in(1, demo))

    generated = (tmp_path / "var" / "demo-jwt-secret").read_text().strip()
    assert len(generated.encode()) >= 32
    assert (response.status_code, response.json()["count"]) == (200, 0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wallet_serve_in_demo_mode_without_a_secret_generates_one_and_serves(
    engine, settings, tmp_path
):
    env = serve_environment(settings.database_url, tmp_path / "var", WALLET_ENV="demo")
    del env["WALLET_JWT_SECRET"]

    with ServedApi(env, tmp_path / "serve.log") as api:
        demo = Settings(env="demo", jwt_secret=None, var_dir=tmp_path / "var", _env_file=None)
        token = issue_token(1, demo)
        answer = httpx.get(f"{api.url}{PLANS}", headers={"Authorization": f"Bearer {token}"})

    assert (tmp_path / "var" / "demo-jwt-secret").is_file()
    assert (answer.status_code, answer.json()["count"]) == (200, 0)
