"""The app as a whole: start-up checks, /health, the OpenAPI document, and answers while the
database is away."""

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from tests.conftest import JWT_SECRET
from tests.support import signed_in
from wallet.db import make_engine
from wallet.errors import ConfigurationError
from wallet.schema import upgrade
from wallet.settings import Settings
from wallet_api.main import create_app

PLANS = "/payment/service_list/"
ORDERS = "/payment/payment_record/"
UNAVAILABLE = {"detail": "database unavailable"}


# --- start-up ---------------------------------------------------------------------------------


def test_create_app_refuses_a_31_byte_secret(tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'wallet.db'}", jwt_secret="s" * 31, _env_file=None
    )

    with pytest.raises(ConfigurationError) as refused:
        create_app(settings)

    assert str(refused.value) == "WALLET_JWT_SECRET is 31 bytes; it must be at least 32"


def test_create_app_refuses_a_missing_secret_outside_demo_mode(tmp_path):
    settings = Settings(
        env="production",
        database_url=f"sqlite:///{tmp_path / 'wallet.db'}",
        jwt_secret=None,
        _env_file=None,
    )

    with pytest.raises(ConfigurationError) as refused:
        create_app(settings)

    assert str(refused.value).startswith("WALLET_JWT_SECRET is not set;")


def test_create_app_accepts_a_32_byte_secret(engine, settings):
    settings = Settings(database_url=settings.database_url, jwt_secret="s" * 32, _env_file=None)

    with TestClient(create_app(settings)) as client:
        response = client.get(PLANS, headers=signed_in(1, settings))

    assert (response.status_code, response.json()["count"]) == (200, 0)


# --- health and docs ----------------------------------------------------------------------------


def test_health_answers_ok(client):
    response = client.get("/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_docs_page_is_served(client):
    response = client.get("/docs")

    assert response.status_code == 200
    assert "/openapi.json" in response.text


@pytest.mark.parametrize(
    ("path", "page_schema"), [(PLANS, "ServiceListPage"), (ORDERS, "PaymentRecordPage")]
)
def test_openapi_lists_every_answer_of_the_list_endpoints(client, path, page_schema):
    document = client.get("/openapi.json").json()
    operation = document["paths"][path]["get"]

    def schema_of(status: str) -> dict:
        return operation["responses"][status]["content"]["application/json"]["schema"]

    assert sorted(operation["responses"]) == ["200", "401", "422", "503"]
    assert schema_of("200") == {"$ref": f"#/components/schemas/{page_schema}"}
    assert schema_of("401") == {"$ref": "#/components/schemas/ErrorMessage"}
    assert schema_of("422") == {"$ref": "#/components/schemas/HTTPValidationError"}
    assert schema_of("503") == {"$ref": "#/components/schemas/ErrorMessage"}
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert operation["security"] == [{"HTTPBearer": []}]


def test_openapi_declares_the_bearer_scheme_and_the_field_formats(client):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]

    assert document["components"]["securitySchemes"]["HTTPBearer"]["type"] == "http"
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schemas["PlanRecordPublic"]["properties"]["price"]["type"] == "string"
    assert schemas["PlanRecordPublic"]["properties"]["create_time"]["format"] == "date-time"
    assert sorted(schemas["PlanRecordPublic"]["properties"]) == [
        "active_time",
        "create_time",
        "expire_time",
        "id",
        "order_id",
        "price",
        "service_desc",
        "status",
        "status_display",
    ]
    assert sorted(schemas["OrderPublic"]["properties"]) == [
        "actual_price",
        "create_time",
        "order_id",
        "order_status",
        "order_status_display",
        "order_type",
        "pay_time",
        "record_type",
    ]
    assert sorted(schemas["ServiceListPage"]["properties"]) == [
        "count",
        "current",
        "data",
        "is_paginated",
        "pages",
        "per_page",
    ]


def test_openapi_lists_the_answers_of_health(client):
    operation = client.get("/openapi.json").json()["paths"]["/health"]["get"]

    assert sorted(operation["responses"]) == ["200", "503"]
    assert "security" not in operation


# --- while the database is away -------------------------------------------------------------


@pytest.fixture
def database_later(settings, tmp_path) -> tuple[Settings, Callable[[], None]]:
    """Settings for a database that is not there yet, and a function that brings it up."""
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        path = tmp_path / "later" / "wallet.db"
        path.mkdir(parents=True)  # a directory where the file should be: SQLite cannot open it
        url = f"sqlite:///{path}"

        def create() -> None:
            path.rmdir()
    else:
        server = make_url(settings.database_url)
        name = f"{server.database}_later"
        url = server.set(database=name).render_as_string(hide_password=False)

        def create() -> None:
            admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql(f"create database {name}")
            admin.dispose()

    later = Settings(database_url=url, jwt_secret=JWT_SECRET, _env_file=None)

    def bring_up() -> None:
        create()
        engine = make_engine(later.database_url, later)
        upgrade(engine)
        engine.dispose()

    return later, bring_up


def test_service_answers_503_while_the_database_is_away_and_again_once_it_is_back(
    database_later, caplog
):
    later, bring_up = database_later
    headers = signed_in(1, later)

    with TestClient(create_app(later)) as client:
        away = [client.get(path, headers=headers) for path in (PLANS, ORDERS, "/health")]
        bring_up()
        back = [client.get(path, headers=headers) for path in (PLANS, ORDERS, "/health")]

    assert [(response.status_code, response.json()) for response in away] == [
        (503, UNAVAILABLE)
    ] * 3
    assert [response.status_code for response in back] == [200, 200, 200]
    assert [
        record.getMessage().split(":")[0]
        for record in caplog.records
        if record.name == "wallet_api.main" and record.levelno == logging.ERROR
    ] == [
        f"database unavailable for GET {PLANS}",
        f"database unavailable for GET {ORDERS}",
        "database unavailable for GET /health",
    ]


def test_lists_answer_503_while_the_views_are_missing(settings):
    with TestClient(create_app(settings)) as client:
        responses = [client.get(path, headers=signed_in(1, settings)) for path in (PLANS, ORDERS)]

    assert [(response.status_code, response.json()) for response in responses] == [
        (503, UNAVAILABLE),
        (503, UNAVAILABLE),
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_service_list_answers_again_after_postgresql_drops_its_connections(engine, settings):
    headers = signed_in(1, settings)
    with TestClient(create_app(settings)) as client:
        before = client.get(PLANS, headers=headers)
        engine.dispose()
        with engine.connect() as connection:
            dropped = connection.execute(
                text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                    "where datname = current_database() and pid <> pg_backend_pid()"
                )
            ).scalar_one()
        after = client.get(PLANS, headers=headers)

    assert dropped == 1  # the connection the app keeps in its pool
    assert (before.status_code, after.status_code) == (200, 200)
