"""The benchmark dataset generator, at a tiny scale, on a SQLite file and on PostgreSQL."""

import hashlib

import pytest
from sqlalchemy import Engine, func, make_url, select

from bench.datagen import LEGACY_MESS, Sizes, ensure_dataset
from pipelines import vip_migration
from wallet.db import make_engine
from wallet.statuses import OrderStatus, PlanStatus
from wallet.tables import item_record, legacy_user_vip, payment_record

# 2,000 users, 20,000 orders, 6,000 plans, 2,000 legacy rows; the heavy user has 200 orders.
SCALE = 0.002
SEED = 7
TABLES = (legacy_user_vip, item_record, payment_record)


@pytest.fixture
def backend(database_url) -> str:
    return make_url(database_url).get_backend_name()


@pytest.fixture
def dataset_engine(database_url, backend):
    ensure_dataset(backend, scale=SCALE, seed=SEED, url=database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def table_digests(engine: Engine) -> dict[str, str]:
    digests = {}
    with engine.connect() as connection:
        for table in TABLES:
            rows = connection.execute(select(table).order_by(*table.primary_key.columns))
            digest = hashlib.sha256()
            for row in rows:
                digest.update(repr(tuple(row)).encode())
            digests[table.name] = digest.hexdigest()
    return digests


def scalar(engine: Engine, query):
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def test_same_seed_builds_the_same_rows_and_another_seed_others(
    database_url, backend, dataset_engine
):
    built = table_digests(dataset_engine)

    ensure_dataset(backend, scale=SCALE, seed=SEED, url=database_url, rebuild=True)
    assert table_digests(dataset_engine) == built

    ensure_dataset(backend, scale=SCALE, seed=SEED + 1, url=database_url)
    other = table_digests(dataset_engine)
    assert all(other[name] != digest for name, digest in built.items())


def test_dataset_holds_the_counts_and_the_heavy_user(database_url, backend, dataset_engine):
    sizes = Sizes.at(SCALE)
    dataset = ensure_dataset(backend, scale=SCALE, seed=SEED, url=database_url)

    assert (dataset.url, dataset.heavy_user_id, dataset.users) == (database_url, 1, 2_000)
    assert (dataset.orders, dataset.plans, dataset.legacy_rows) == (20_000, 6_000, 2_000)
    for table, rows in zip(TABLES, (sizes.legacy_rows, sizes.plans, sizes.orders), strict=True):
        assert scalar(dataset_engine, select(func.count()).select_from(table)) == rows
    heavy_orders = select(func.count()).where(payment_record.c.user_id == 1)
    heavy_plans = select(func.count()).where(item_record.c.user_id == 1)
    assert scalar(dataset_engine, heavy_orders) == dataset.heavy_orders == 200
    assert scalar(dataset_engine, heavy_plans) == dataset.heavy_plans == 4
    users = select(func.min(payment_record.c.user_id), func.max(payment_record.c.user_id))
    with dataset_engine.connect() as connection:
        assert tuple(connection.execute(users).one()) == (1, 2_000)


def test_every_plan_was_paid_by_an_order_of_its_user(dataset_engine):
    paid_by_own_order = (
        select(func.count())
        .select_from(item_record)
        .join(
            payment_record,
            (payment_record.c.order_id == item_record.c.order_id)
            & (payment_record.c.user_id == item_record.c.user_id),
        )
    )
    assert scalar(dataset_engine, paid_by_own_order) == Sizes.at(SCALE).plans


def test_statuses_mix_refunds_unpaid_orders_and_past_and_future_expiries(dataset_engine):
    with dataset_engine.connect() as connection:
        plan_statuses = set(connection.execute(select(item_record.c.status).distinct()).scalars())
        order_statuses = set(
            connection.execute(select(payment_record.c.order_status).distinct()).scalars()
        )
        expiries = connection.execute(
            select(func.min(item_record.c.expire_time), func.max(item_record.c.expire_time))
        ).one()
    assert plan_statuses == set(PlanStatus)
    assert order_statuses == set(OrderStatus)
    assert expiries[0].year < 2026 < expiries[1].year


def test_migration_quarantines_legacy_rows_for_every_reason(database_url, backend, dataset_engine):
    report = vip_migration.MigrationReport()
    after = None
    while True:
        batch, after = vip_migration.migrate_batch(dataset_engine, after, 500)
        if after is None:
            break
        report.add(batch)

    assert report.rows_read == 2_000
    assert report.migrated + sum(report.quarantined_new.values()) == 2_000
    for reason, per_thousand in LEGACY_MESS:
        if reason == "duplicate":
            # A twin of a row quarantined for another reason migrates instead.
            assert 0 < report.quarantined_new[reason] <= 2 * per_thousand
        else:
            assert report.quarantined_new[reason] == 2 * per_thousand

    # The migration changed the tables: asking for the dataset again builds it afresh.
    rebuilt = ensure_dataset(backend, scale=SCALE, seed=SEED, url=database_url)
    assert scalar(dataset_engine, select(func.count()).select_from(item_record)) == rebuilt.plans
