"""The API against its own OpenAPI document: schemathesis generates requests from the schema,
valid and invalid, and runs every standard check on each answer, on SQLite and PostgreSQL."""

import re
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import insert

from tests.support import JWT_SECRET, signed_in
from wallet.settings import Settings
from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.tables import item_record, payment_record
from wallet_api.auth import issue_token
from wallet_api.main import create_app

PLANS = "/payment/service_list/"
ORDERS = "/payment/payment_record/"
USER_ID = 1
CREATED = datetime(2025, 10, 19, 5, 24, 25, tzinfo=UTC)


def add_rows_of_every_status(engine, user_id: int) -> None:
    """A plan in each status and an order of each type in each status, for `user_id`."""
    plans = [
        {
            "user_id": user_id,
            "service_desc": "标准版",
            "price": Decimal("999.00"),
            "status": status.value,
            "create_time": CREATED + timedelta(minutes=n),
            "active_time": CREATED if status != PlanStatus.APPLYING else None,
            "expire_time": CREATED + timedelta(days=365 * (n % 2 * 20)),
            "order_id": f"PB-{user_id}-{n}" if n % 3 else None,
        }
        for n, status in enumerate(PlanStatus)
    ]
    orders = [
        {
            "order_id": f"PB-{user_id}-{record_type.value}-{status.value}",
            "user_id": user_id,
            "record_type": record_type.value,
            "actual_price": Decimal("19999.50"),
            "order_status": status.value,
            "create_time": CREATED + timedelta(minutes=n),
            "pay_time": CREATED if status == OrderStatus.PAID else None,
        }
        for n, (record_type, status) in enumerate(
            (record_type, status) for record_type in RecordType for status in OrderStatus
        )
    ]
    with engine.begin() as connection:
        connection.execute(insert(item_record), plans)
        connection.execute(insert(payment_record), orders)


@pytest.fixture
def app(engine, settings):
    """The API on a database where user 1 has a row of every kind, and user 2 too."""
    add_rows_of_every_status(engine, USER_ID)
    add_rows_of_every_status(engine, USER_ID + 1)
    app = create_app(settings)
    with TestClient(app):  # runs the lifespan, as uvicorn would
        yield app


def published_schema():
    """The OpenAPI document the app serves; it does not depend on the database behind it."""
    # NOTE: loaded at import rather than with `schemathesis.pytest.from_fixture`, whose lazy
    # loader reads `request.node._nodeid`, which pytest 9 no longer has.
    unused = Path(tempfile.gettempdir()) / "wallet-openapi-unused.db"  # never connected to
    app = create_app(
        Settings(database_url=f"sqlite:///{unused}", jwt_secret=JWT_SECRET, _env_file=None)
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Every request signs in as the user with rows, as the schema's security scheme says; the
    # checks that probe authentication (ignored_auth) drop or spoil this header themselves.
    signing = Settings(jwt_secret=JWT_SECRET, _env_file=None)
    token = issue_token(USER_ID, signing, timedelta(days=1))
    schema.config.update(headers={"Authorization": f"Bearer {token}"})
    return schema


schema = published_schema()


@schema.parametrize()
@examples(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi_document(case, app):
    case.call_and_validate(app=app)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_states_the_page_bounds_and_that_empty_values_count_as_not_sent(client):
    document = client.get("/openapi.json").json()

    for path in (PLANS, ORDERS):
        operation = document["paths"][path]["get"]
        parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
        bounds = {
            name: (parameter["schema"].get("minimum"), parameter["schema"].get("maximum"))
            for name, parameter in parameters.items()
            if name in ("page", "per_page")
        }
        assert bounds == {"page": (1, 1_000_000), "per_page": (1, 100)}
        assert {name: parameter["allowEmptyValue"] for name, parameter in parameters.items()} == {
            name: True for name in parameters
        }


# --- any query string: 200 for good values, 422 naming each bad parameter, never 500 ----------

# The values each parameter takes; None for page numbers, which take digits within BOUNDS.
ALLOWED = {
    PLANS: {"status": [status.value for status in PlanStatus], "page": None, "per_page": None},
    ORDERS: {
        "record_type": [str(record_type.value) for record_type in RecordType],
        "order_status": [status.value for status in OrderStatus],
        "page": None,
        "per_page": None,
    },
}
BOUNDS = {"page": (1, 1_000_000), "per_page": (1, 100)}
SQL_LOOKING = [
    "' or '1'='1",
    "1; drop table item_record",
    "1 union select * from payment_record",
    "paid' --",
    "%",
    "_",
    "\\",
    "null",
    "1/*",
]


def query_values(allowed: list[str] | None):
    """Values of one parameter: good ones, empty ones, and every kind of bad one."""
    return st.one_of(
        st.sampled_from(allowed or ["1", "2", "10", "100"]),
        st.just(""),
        st.integers(min_value=-(10**40), max_value=10**40).map(str),
        st.integers(min_value=-2, max_value=1_000_002).map(str),
        st.text(max_size=12),
        st.sampled_from([*SQL_LOOKING, "١", "２", "1e3", "0x10", "+1", " 1", "1.0", "\x00"]),
    )


def acceptable(name: str, value: str, allowed: list[str] | None) -> bool:
    if allowed is not None:
        return value in allowed
    low, high = BOUNDS[name]
    return re.fullmatch("[0-9]+", value) is not None and low <= int(value) <= high


@st.composite
def queries(draw, url: str) -> list[tuple[str, str]]:
    """Each parameter of `url` sent zero to three times, in a random order."""
    pairs = [
        (name, value)
        for name, allowed in ALLOWED[url].items()
        for value in draw(st.lists(query_values(allowed), max_size=3))
    ]
    return draw(st.permutations(pairs))


@pytest.fixture
def client_with_rows(engine, client) -> TestClient:
    add_rows_of_every_status(engine, USER_ID)
    return client


@examples(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), url=st.sampled_from([PLANS, ORDERS]))
def test_lists_answer_any_query_with_200_or_422_naming_each_bad_parameter(
    client_with_rows, settings, data, url
):
    query = data.draw(queries(url), label="query")
    headers = signed_in(USER_ID, settings)

    response = client_with_rows.get(url, params=query, headers=headers)

    sent: dict[str, list[str]] = {}
    for name, value in query:
        if value:  # an empty value is as if the parameter had not been sent
            sent.setdefault(name, []).append(value)
    repeated = {name for name, values in sent.items() if len(values) > 1}
    bad = {
        name
        for name, (value, *_) in sent.items()
        if not acceptable(name, value, ALLOWED[url][name])
    }
    if repeated or bad:
        assert response.status_code == 422, response.text
        errors = response.json()["detail"]
        # A repeated parameter is refused before any value is looked at.
        assert {tuple(error["loc"]) for error in errors} == {
            ("query", name) for name in (repeated or bad)
        }
        if repeated:
            assert {error["type"] for error in errors} == {"repeated_parameter"}
    else:
        assert response.status_code == 200, response.text
        as_if_only_these = {name: values[0] for name, values in sent.items()}
        alone = client_with_rows.get(url, params=as_if_only_these, headers=headers)
        assert response.json() == alone.json()
        assert response.json()["current"] == int(as_if_only_these.get("page", 1))
        assert response.json()["per_page"] == int(as_if_only_these.get("per_page", 10))
