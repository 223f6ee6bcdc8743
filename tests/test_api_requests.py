"""What both list endpoints refuse: requests without a valid token (401) and bad parameters
(422), and what they take as if nothing had been sent (empty values)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jwt
import pytest
from sqlalchemy import insert

from tests.conftest import JWT_SECRET
from tests.support import signed_in
from wallet.tables import item_record, payment_record
from wallet_api.auth import issue_token

PLANS = "/payment/service_list/"
ORDERS = "/payment/payment_record/"
BOTH = pytest.mark.parametrize("url", [PLANS, ORDERS], ids=["service_list", "payment_record"])
CREATED = datetime(2025, 10, 19, 5, 24, 25, tzinfo=UTC)

PLAN_STATUSES = (
    "'applying', 'success', 'refund', 'cancel_refund', 'refunded', 'closed', 'canceled', "
    "'deleted' or 'expired'"
)
ORDER_STATUSES = (
    "'unpay', 'paid', 'fail', 'refund', 'cancel_refund', 'refunded', 'closed', 'canceled' "
    "or 'deleted'"
)
RECORD_TYPES = "1, 2, 3 or 4"
WHOLE_NUMBER = "Input should be a whole number"


def the_only_error(response) -> tuple[list, str]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return error["loc"], error["msg"]


# --- 422: parameters out of range, not numbers, or not one of the allowed values ---------------


@BOTH
@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        ("page", "0", "Input should be greater than or equal to 1"),
        ("page", "1000001", "Input should be less than or equal to 1000000"),
        (
            "page",
            "99999999999999999999999999999999",
            "Input should be less than or equal to 1000000",
        ),
        ("page", "-1", "Input should be greater than or equal to 1"),
        ("per_page", "-99999999999999999999", "Input should be greater than or equal to 1"),
        ("page", "+1", WHOLE_NUMBER),
        ("page", "--1", WHOLE_NUMBER),
        ("page", "abc", WHOLE_NUMBER),
        ("page", "1.5", WHOLE_NUMBER),
        ("page", "1.0", WHOLE_NUMBER),
        ("page", "1e3", WHOLE_NUMBER),
        ("page", "1_0", WHOLE_NUMBER),
        ("page", " 2", WHOLE_NUMBER),
        ("page", "２", WHOLE_NUMBER),
        ("page", "1; drop table item_record", WHOLE_NUMBER),
        ("per_page", "0", "Input should be greater than or equal to 1"),
        ("per_page", "101", "Input should be less than or equal to 100"),
        ("per_page", "ten", WHOLE_NUMBER),
        ("per_page", "10.0", WHOLE_NUMBER),
    ],
)
def test_lists_refuse_a_bad_page_or_per_page(client, settings, url, parameter, value, message):
    response = client.get(url, params={parameter: value}, headers=signed_in(1, settings))

    assert the_only_error(response) == (["query", parameter], message)


@pytest.mark.parametrize(
    "value", ["refunding", "SUCCESS", "已过期", "' or '1'='1", "success; drop table item_record"]
)
def test_service_list_refuses_an_unknown_status_naming_the_allowed_ones(client, settings, value):
    response = client.get(PLANS, params={"status": value}, headers=signed_in(1, settings))

    assert the_only_error(response) == (["query", "status"], f"Input should be {PLAN_STATUSES}")


@pytest.mark.parametrize("value", ["success", "Paid", "交易成功", "paid' --", "%", "\x00"])
def test_payment_record_refuses_an_unknown_order_status_naming_the_allowed_ones(
    client, settings, value
):
    response = client.get(ORDERS, params={"order_status": value}, headers=signed_in(1, settings))

    assert the_only_error(response) == (
        ["query", "order_status"],
        f"Input should be {ORDER_STATUSES}",
    )


@pytest.mark.parametrize(
    "value",
    ["0", "5", "-1", "03", "3.0", "recharge", "充值", "١", "99999999999999999999999", "1 or 1=1"],
)
def test_payment_record_refuses_an_unknown_record_type_naming_the_allowed_ones(
    client, settings, value
):
    response = client.get(ORDERS, params={"record_type": value}, headers=signed_in(1, settings))

    assert the_only_error(response) == (["query", "record_type"], f"Input should be {RECORD_TYPES}")


def test_payment_record_names_every_bad_parameter_at_once(client, settings):
    response = client.get(
        ORDERS,
        params={"record_type": "9", "order_status": "x", "page": "0", "per_page": "x"},
        headers=signed_in(1, settings),
    )

    assert response.status_code == 422
    assert sorted(error["loc"][1] for error in response.json()["detail"]) == [
        "order_status",
        "page",
        "per_page",
        "record_type",
    ]


# --- 422: a parameter given twice -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "parameters", "repeated"),
    [
        (PLANS, [("status", "refund"), ("status", "success")], "status"),
        (PLANS, [("status", "refund"), ("status", "refund")], "status"),
        (PLANS, [("page", "1"), ("page", "2")], "page"),
        (
            ORDERS,
            [("record_type", "1"), ("order_status", "paid"), ("record_type", "2")],
            "record_type",
        ),
        (ORDERS, [("order_status", "paid"), ("order_status", "fail")], "order_status"),
        (ORDERS, [("per_page", "10"), ("per_page", "20"), ("per_page", "30")], "per_page"),
    ],
)
def test_lists_refuse_a_parameter_given_twice(client, settings, url, parameters, repeated):
    response = client.get(url, params=parameters, headers=signed_in(1, settings))

    values = [value for name, value in parameters if name == repeated]
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "repeated_parameter",
                "loc": ["query", repeated],
                "msg": f"`{repeated}` may be given once, it was given {len(values)} times",
                "input": values,
            }
        ]
    }


# --- empty values count as not sent -------------------------------------------------------------


@pytest.fixture
def some_rows(engine) -> None:
    """Two plans and two orders of user 1, one of each deleted."""
    plan = {
        "user_id": 1,
        "service_desc": "标准版",
        "price": Decimal("999.00"),
        "create_time": CREATED,
        "active_time": None,
        "expire_time": None,
        "order_id": None,
    }
    order = {
        "user_id": 1,
        "record_type": 1,
        "actual_price": Decimal("50.00"),
        "create_time": CREATED,
        "pay_time": None,
    }
    with engine.begin() as connection:
        connection.execute(insert(item_record).values(**plan, id=1, status="applying"))
        connection.execute(insert(item_record).values(**plan, id=2, status="deleted"))
        connection.execute(
            insert(payment_record).values(**order, order_id="PB1", order_status="unpay")
        )
        connection.execute(
            insert(payment_record).values(**order, order_id="PB2", order_status="deleted")
        )


@pytest.mark.parametrize(
    ("url", "query"),
    [
        (PLANS, "status="),
        (PLANS, "status=&page=&per_page="),
        (PLANS, "status&page"),
        (PLANS, "status=&status="),
        (ORDERS, "record_type=&order_status="),
        (ORDERS, "order_status=&per_page=&&"),
    ],
)
def test_lists_take_an_empty_value_as_not_sent(client, settings, some_rows, url, query):
    headers = signed_in(1, settings)

    with_empty_values = client.get(f"{url}?{query}", headers=headers)
    without = client.get(url, headers=headers)

    assert with_empty_values.status_code == 200, with_empty_values.text
    assert with_empty_values.json() == without.json()
    assert (without.json()["count"], without.json()["per_page"]) == (1, 10)


def test_lists_apply_the_value_that_is_not_empty(client, settings, some_rows):
    response = client.get(f"{PLANS}?status=&status=deleted", headers=signed_in(1, settings))

    assert [row["id"] for row in response.json()["data"]] == [2]


# --- 401: no valid token ---------------------------------------------------------------------

OTHER_SECRET = "another-secret-that-is-just-as-long-0123456789"
NOT_BEARER = "the Authorization header must read `Bearer <token>`"
BAD_SUBJECT = "the token's `sub` must be a positive integer user id"


def in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def bearer(claims: dict, key: str = JWT_SECRET, algorithm: str = "HS256") -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}"}


REFUSED = [
    pytest.param(
        lambda s: {}, "not signed in: send `Authorization: Bearer <token>`", id="no-header"
    ),
    pytest.param(lambda s: {"Authorization": "Basic dXNlcjpwYXNz"}, NOT_BEARER, id="basic"),
    pytest.param(lambda s: {"Authorization": "Bearer"}, NOT_BEARER, id="bearer-alone"),
    pytest.param(lambda s: {"Authorization": issue_token(1, s)}, NOT_BEARER, id="no-scheme"),
    pytest.param(
        lambda s: {"Authorization": "Bearer not.a.token"},
        "the token is not a well-formed JWT",
        id="malformed",
    ),
    pytest.param(
        lambda s: bearer({"sub": "1", "exp": in_an_hour()}, key=OTHER_SECRET),
        "the token's signature does not match",
        id="bad-signature",
    ),
    pytest.param(
        lambda s: bearer({"sub": "1", "exp": in_an_hour()}, key="", algorithm="none"),
        "the token must be signed with HS256",
        id="alg-none",
    ),
    pytest.param(
        # A 64-byte key, so that PyJWT signs HS512 without warning; the algorithm is what's wrong.
        lambda s: bearer({"sub": "1", "exp": in_an_hour()}, key=JWT_SECRET * 2, algorithm="HS512"),
        "the token must be signed with HS256",
        id="alg-hs512",
    ),
    pytest.param(
        lambda s: {"Authorization": f"Bearer {issue_token(1, s, timedelta(seconds=-1))}"},
        "the token has expired",
        id="expired",
    ),
    pytest.param(lambda s: bearer({"sub": "1"}), "the token has no `exp` claim", id="no-exp"),
    pytest.param(
        lambda s: bearer({"exp": in_an_hour()}), "the token has no `sub` claim", id="no-sub"
    ),
    pytest.param(
        lambda s: bearer({"sub": 1, "exp": in_an_hour()}),
        "the token's `sub` must be a user id string",
        id="sub-a-number",
    ),
    *(
        pytest.param(
            lambda s, sub=sub: bearer({"sub": sub, "exp": in_an_hour()}),
            BAD_SUBJECT,
            id=f"sub-{sub!r}",
        )
        for sub in ["abc", "0", "-5", "1.5", " 1", "01", "", "9223372036854775808", "١"]
    ),
]


@BOTH
@pytest.mark.parametrize(("headers", "detail"), REFUSED)
def test_lists_refuse_requests_without_a_valid_token(client, settings, url, headers, detail):
    response = client.get(url, headers=headers(settings))

    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Bearer"


@BOTH
def test_lists_refuse_a_request_without_a_token_before_looking_at_its_parameters(client, url):
    response = client.get(url, params=[("page", "0"), ("status", "x"), ("status", "y")])

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_lists_accept_the_largest_user_id(client, settings):
    response = client.get(PLANS, headers=signed_in(2**63 - 1, settings))

    assert (response.status_code, response.json()["count"]) == (200, 0)


def test_issue_token_signs_in_as_the_user_for_the_lifetime_asked(settings):
    token = issue_token(1001, settings, timedelta(minutes=5))

    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert claims["sub"] == "1001"
    assert claims["exp"] - claims["iat"] == 300


def test_issue_token_lasts_twelve_hours_by_default(settings):
    claims = jwt.decode(issue_token(7, settings), JWT_SECRET, algorithms=["HS256"])

    assert claims["exp"] - claims["iat"] == 12 * 3600


@pytest.mark.parametrize("user_id", [0, -1, 2**63])
def test_issue_token_refuses_an_impossible_user_id(settings, user_id):
    with pytest.raises(ValueError, match="user_id must be between 1 and 9223372036854775807"):
        issue_token(user_id, settings)
