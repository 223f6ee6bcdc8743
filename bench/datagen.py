"""A wallet database at production scale for the benchmarks, built once and reused.

At scale 1.0: 1,000,000 users, 3,000,000 plan records, 10,000,000 orders and 1,000,000 legacy
VIP rows with the legacy export's kinds of mess (so a migration quarantines rows for every
reason), plus one heavy user (user_id 1) with 100,000 orders and 2,000 plans; typical users
are 2..users. Every count scales with `--scale` (PostgreSQL defaults to 1.0, SQLite to 0.1).

Every value is a hash of the row number and the seed, computed by DuckDB over `range()`, so
the same seed always gives the same rows. PostgreSQL is loaded with COPY, streamed from DuckDB
through a named pipe, with the tables' indexes and keys dropped during the load and built
again after; SQLite gets batched inserts. The database records what it holds in the table
`bench_dataset`, so `ensure_dataset()` reuses a matching build and builds anything else.

    .venv/bin/python -m bench.datagen --backend postgresql|sqlite [--scale S] [--seed N]

    from bench.datagen import ensure_dataset
    dataset = ensure_dataset("postgresql", scale=1.0, seed=1)
"""

import argparse
import fcntl
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    make_url,
    select,
)

from bench.common import PROJECT_DIR, postgres_database_url
from pipelines.demo_data import (
    CATALOGUE,
    DELETED_ROLE_ID,
    LEGACY_STATUS_WEIGHTS,
    ROLE_WEIGHTS,
    UNKNOWN_LEGACY_STATUSES,
)
from wallet.db import make_engine
from wallet.schema import upgrade
from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.tables import (
    item_record,
    legacy_user_vip,
    legacy_vip_role,
    migration_quarantine,
    payment_record,
    plan,
)

# Bump when the rows a seed gives change, so that older builds are not taken for this one.
GENERATOR_VERSION = 2
DEFAULT_SEED = 1
DEFAULT_SCALE = {"postgresql": 1.0, "sqlite": 0.1}
HEAVY_USER_ID = 1
# fcntl.F_SETPIPE_SZ (Linux); a bigger pipe lets DuckDB run further ahead of COPY.
F_SETPIPE_SZ = 1031
SQLITE_DIR = PROJECT_DIR / "var" / "bench"

# The counts at scale 1.0.
USERS = 1_000_000
PLANS = 3_000_000
ORDERS = 10_000_000
LEGACY_ROWS = 1_000_000
HEAVY_ORDERS = 100_000
HEAVY_PLANS = 2_000

# The dataset's own "now": times are drawn around a fixed day, not the clock, so that a seed
# always gives the same rows. Plans "running" expire after it, "past" ones before it.
FIRST_DAY = datetime(2015, 1, 1)
AS_OF = datetime(2026, 12, 1)
# Past plans were bought before this day, so that even a two-year plan has ended by AS_OF.
PAST_PURCHASES_END = datetime(2024, 11, 1)
RUNNING_EXPIRY = (datetime(2027, 1, 1), datetime(2036, 12, 31))
# Legacy rows are naive Asia/Shanghai wall-clock times, like the export.
LEGACY_FIRST_DAY = datetime(2014, 1, 1)

# What a plan record is, with how often (in %): its stored status, whether its time is past
# (it expired before AS_OF), running (expires after AS_OF) or never started, and the status of
# the order that paid for it. Success and cancel_refund plans in the past are those the
# expire-plans flow has yet to move: a third of all plans.
PLAN_KINDS = (
    (PlanStatus.SUCCESS, "past", OrderStatus.PAID, 31),
    (PlanStatus.SUCCESS, "running", OrderStatus.PAID, 18),
    (PlanStatus.EXPIRED, "past", OrderStatus.PAID, 15),
    (PlanStatus.CANCEL_REFUND, "past", OrderStatus.CANCEL_REFUND, 2),
    (PlanStatus.CANCEL_REFUND, "running", OrderStatus.CANCEL_REFUND, 1),
    (PlanStatus.REFUND, "running", OrderStatus.REFUND, 4),
    (PlanStatus.REFUNDED, "past", OrderStatus.REFUNDED, 6),
    (PlanStatus.APPLYING, "none", OrderStatus.UNPAY, 4),
    (PlanStatus.CLOSED, "none", OrderStatus.CLOSED, 8),
    (PlanStatus.CANCELED, "none", OrderStatus.CANCELED, 6),
    (PlanStatus.DELETED, "past", OrderStatus.DELETED, 5),
)
# Orders that bought no plan: record types and statuses, with weights.
RECORD_TYPE_WEIGHTS = {
    RecordType.RECHARGE: 30,
    RecordType.WITHDRAWAL: 15,
    RecordType.EXPENSE: 35,
    RecordType.INCOME: 20,
}
ORDER_STATUS_WEIGHTS = {
    OrderStatus.PAID: 62,
    OrderStatus.UNPAY: 6,
    OrderStatus.FAIL: 4,
    OrderStatus.REFUND: 4,
    OrderStatus.CANCEL_REFUND: 2,
    OrderStatus.REFUNDED: 5,
    OrderStatus.CLOSED: 8,
    OrderStatus.CANCELED: 6,
    OrderStatus.DELETED: 3,
}
HEAVY_USER_RECORD_TYPES = (int(RecordType.RECHARGE), int(RecordType.EXPENSE))
PAID_ORDER_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.REFUND,
    OrderStatus.CANCEL_REFUND,
    OrderStatus.REFUNDED,
)
RECHARGE_CENTS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
DISCOUNT_PERCENT = (100, 100, 100, 90, 80)
# Legacy rows with each kind of mess, per thousand, in the migration's order of reasons. The
# slot of a row is a permutation of its id, so any 1,000 consecutive ids hold exactly these.
LEGACY_MESS = (
    ("missing_user", 2),
    ("unknown_role", 2),
    ("unknown_status", 2),
    ("expire_before_active", 2),
    ("negative_price", 2),
    ("duplicate", 10),
)
ACTIVATED_LEGACY_STATUSES = ("success", "expired", "refunding", "refunded")

# Disk a build needs per row, on PostgreSQL and SQLite (table, indexes, write-ahead log),
# measured at scale 0.1 with some room, and what a VIP migration over it adds.
BYTES_PER_ROW = {
    "postgresql": {"orders": 260, "plans": 420, "legacy_rows": 560},
    "sqlite": {"orders": 200, "plans": 300, "legacy_rows": 400},
}
BYTES_FIXED = {"postgresql": 1_500_000_000, "sqlite": 100_000_000}

bench_metadata = MetaData()
bench_dataset = Table(
    "bench_dataset",
    bench_metadata,
    Column("generator_version", Integer, nullable=False),
    Column("scale", Float, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("users", BigInteger, nullable=False),
    Column("plans", BigInteger, nullable=False),
    Column("orders", BigInteger, nullable=False),
    Column("legacy_rows", BigInteger, nullable=False),
    Column("heavy_user_id", BigInteger, nullable=False),
    Column("heavy_orders", BigInteger, nullable=False),
    Column("heavy_plans", BigInteger, nullable=False),
    Column("built_at", Text, nullable=False),
    Column("build_seconds", Float, nullable=False),
)


class NotEnoughDiskError(Exception):
    """The disk the database lives on has less room than the build needs."""


@dataclass(frozen=True)
class Sizes:
    """How many rows of each kind a scale means."""

    users: int
    plans: int
    orders: int
    legacy_rows: int
    heavy_orders: int
    heavy_plans: int

    @classmethod
    def at(cls, scale: float) -> "Sizes":
        sizes = cls(
            users=round(USERS * scale),
            plans=round(PLANS * scale),
            orders=round(ORDERS * scale),
            legacy_rows=round(LEGACY_ROWS * scale),
            heavy_orders=max(1, round(HEAVY_ORDERS * scale)),
            heavy_plans=max(1, round(HEAVY_PLANS * scale)),
        )
        if sizes.users < 100 or sizes.legacy_rows < 100:
            raise ValueError(f"scale {scale} is too small: use at least 0.0001")
        return sizes

    @property
    def typical_orders(self) -> int:
        return self.orders - self.heavy_orders

    @property
    def typical_plans(self) -> int:
        return self.plans - self.heavy_plans


@dataclass(frozen=True)
class Dataset:
    """A built database: where it is and what it holds."""

    backend: str
    url: str
    scale: float
    seed: int
    users: int
    plans: int
    orders: int
    legacy_rows: int
    heavy_orders: int
    heavy_plans: int
    built_at: str
    build_seconds: float
    heavy_user_id: int = HEAVY_USER_ID


# --- where a dataset lives ---------------------------------------------------------------------


def dataset_name(scale: float, seed: int) -> str:
    """`wallet_bench_s1_seed1`: a database (or file) per scale and seed."""
    scale_tag = re.sub(r"[^0-9a-z]", "_", f"{scale:g}")
    return f"wallet_bench_s{scale_tag}_seed{seed}"


def default_url(backend: str, scale: float, seed: int) -> str:
    if backend == "postgresql":
        return postgres_database_url(dataset_name(scale, seed))
    if backend == "sqlite":
        return f"sqlite:///{SQLITE_DIR / (dataset_name(scale, seed) + '.db')}"
    raise ValueError(f"backend {backend!r}: use postgresql or sqlite")


def ensure_dataset(
    backend: str,
    *,
    scale: float | None = None,
    seed: int = DEFAULT_SEED,
    url: str | None = None,
    rebuild: bool = False,
) -> Dataset:
    """The dataset of this scale and seed: reused when the database holds it, else built.

    `url` defaults to a database named after the scale and seed (PostgreSQL: on the benchmark
    server of `bench.common`; SQLite: a file under var/bench/).
    """
    scale = DEFAULT_SCALE[backend] if scale is None else scale
    url = url or default_url(backend, scale, seed)
    if make_url(url).get_backend_name() != backend:
        raise ValueError(f"{url} is not a {backend} database")
    engine = make_engine(url)
    try:
        with _build_lock(engine):
            upgrade(engine)
            bench_metadata.create_all(engine)
            dataset = None if rebuild else _stored_dataset(engine, url, scale, seed)
            if dataset is not None:
                print(f"datagen: reusing {_describe(dataset)}, built {dataset.built_at}")
                return dataset
            return _build(engine, url, scale, seed)
    finally:
        engine.dispose()


def _stored_dataset(engine: Engine, url: str, scale: float, seed: int) -> Dataset | None:
    """The dataset recorded in the database, if it is this one and its tables still hold it."""
    with engine.connect() as connection:
        marker = connection.execute(select(bench_dataset)).mappings().first()
        if marker is None:
            return None
        wanted = (GENERATOR_VERSION, scale, seed)
        if (marker["generator_version"], marker["scale"], marker["seed"]) != wanted:
            print(
                f"datagen: the database holds scale {marker['scale']:g} seed {marker['seed']} "
                f"(generator {marker['generator_version']}); rebuilding"
            )
            return None
        held = {
            "plans": _count(connection, item_record),
            "orders": _count(connection, payment_record),
            "legacy_rows": _count(connection, legacy_user_vip),
            "quarantine": _count(connection, migration_quarantine),
        }
    recorded = {key: marker[key] for key in ("plans", "orders", "legacy_rows")}
    if held != recorded | {"quarantine": 0}:
        print(f"datagen: the tables changed since the build ({held}); rebuilding")
        return None
    fields = {key: value for key, value in marker.items() if key != "generator_version"}
    return Dataset(backend=engine.dialect.name, url=url, **fields)


def _count(connection, table: Table) -> int:
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


@contextmanager
def _build_lock(engine: Engine) -> Iterator[None]:
    """One build at a time per database; a second caller waits, then reuses the build."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("select pg_advisory_lock(5005)")
            try:
                yield
            finally:
                connection.exec_driver_sql("select pg_advisory_unlock(5005)")
                connection.commit()
        return
    with open(f"{engine.url.database}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def _describe(dataset: Dataset | Sizes) -> str:
    return (
        f"{dataset.users:,} users, {dataset.plans:,} plan records, {dataset.orders:,} orders, "
        f"{dataset.legacy_rows:,} legacy VIP rows; heavy user {HEAVY_USER_ID}: "
        f"{dataset.heavy_orders:,} orders, {dataset.heavy_plans:,} plans"
    )


# --- disk --------------------------------------------------------------------------------------


def disk_needed(backend: str, sizes: Sizes) -> int:
    """Bytes a build (and one VIP migration over it) needs, roughly."""
    per_row = BYTES_PER_ROW[backend]
    rows = per_row["orders"] * sizes.orders + per_row["plans"] * sizes.plans
    return rows + per_row["legacy_rows"] * sizes.legacy_rows + BYTES_FIXED[backend]


def check_disk(engine: Engine, sizes: Sizes) -> None:
    """Refuse to build when the database's disk lacks room; prints what is needed."""
    backend = engine.dialect.name
    needed = disk_needed(backend, sizes)
    if backend == "postgresql":
        with engine.connect() as connection:
            directory = Path(connection.exec_driver_sql("show data_directory").scalar_one())
            # What the build replaces is freed first.
            held = connection.exec_driver_sql(
                "select pg_database_size(current_database())"
            ).scalar_one()
    else:
        directory = Path(engine.url.database).parent
        held = Path(engine.url.database).stat().st_size
    if not directory.exists():
        print(f"datagen: needs about {needed / 1e9:.1f} GB on the server (cannot check)")
        return
    free = shutil.disk_usage(directory).free + held
    print(
        f"datagen: needs about {needed / 1e9:.1f} GB in {directory}; "
        f"{free / 1e9:.1f} GB free (counting the {held / 1e9:.1f} GB it replaces)"
    )
    if free < needed:
        raise NotEnoughDiskError(
            f"not enough disk for the dataset: it needs about {needed / 1e9:.1f} GB in "
            f"{directory}, and only {free / 1e9:.1f} GB is free; free some space or use a "
            "smaller --scale"
        )


# --- the rows, as DuckDB queries -----------------------------------------------------------------


def _literal(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _list(values) -> str:
    return "[" + ", ".join(_literal(value) for value in values) + "]"


def _slots(weights: dict) -> list:
    """Each key repeated by its weight: drawing a slot uniformly draws a key by weight."""
    return [key for key, weight in weights.items() for _ in range(weight)]


def _macros(seed: int, sizes: Sizes) -> list[str]:
    """The DuckDB macros the queries below share; every draw hashes a number with the seed."""
    roles_by_id = {role.id: role for role in CATALOGUE}
    last_role_id = max(roles_by_id)
    role_names = [
        roles_by_id[i].vip_name.strip(" \t") if i in roles_by_id else None
        for i in range(1, last_role_id + 1)
    ]
    role_cents = [
        int(roles_by_id[i].price * 100) if i in roles_by_id else None
        for i in range(1, last_role_id + 1)
    ]
    role_months = [
        roles_by_id[i].service_month if i in roles_by_id else None
        for i in range(1, last_role_id + 1)
    ]
    role_slots = _slots(dict(zip((role.id for role in CATALOGUE), ROLE_WEIGHTS, strict=True)))
    kind_slots = _slots({index + 1: kind[3] for index, kind in enumerate(PLAN_KINDS)})
    mess_slots = [reason for reason, per_thousand in LEGACY_MESS for _ in range(per_thousand)]
    mess_slots += ["clean"] * (1000 - len(mess_slots))
    typical_users = sizes.users - 1
    return [
        f"create or replace macro draw(n, salt, size) as "
        f"cast(hash(n, {seed}, salt) % size as bigint)",
        f"create or replace macro after_first_day(seconds) as "
        f"timestamp '{FIRST_DAY}' + to_seconds(seconds)",
        "create or replace macro cents_text(cents) as "
        "cast(cents // 100 as varchar) || '.' || lpad(cast(cents % 100 as varchar), 2, '0')",
        # Order numbers as the payment back office writes them: PB, Shanghai time, sequence.
        "create or replace macro order_number(n, create_time) as "
        "'PB' || strftime(create_time + interval 8 hour, '%Y%m%d%H%M%S') "
        "|| lpad(cast(n + 1 as varchar), 9, '0')",
        f"create or replace macro role_name(role_id) as {_list(role_names)}[role_id]",
        f"create or replace macro role_cents(role_id) as {_list(role_cents)}[role_id]",
        f"create or replace macro role_months(role_id) as {_list(role_months)}[role_id]",
        f"create or replace macro draw_role(n, salt) as "
        f"{_list(role_slots)}[draw(n, salt, {len(role_slots)}) + 1]",
        f"create or replace macro draw_kind(k) as "
        f"{_list(kind_slots)}[draw(k, 'kind', {len(kind_slots)}) + 1]",
        f"create or replace macro kind_status(kind) as "
        f"{_list(str(kind[0]) for kind in PLAN_KINDS)}[kind]",
        f"create or replace macro kind_time(kind) as {_list(kind[1] for kind in PLAN_KINDS)}[kind]",
        f"create or replace macro kind_order_status(kind) as "
        f"{_list(str(kind[2]) for kind in PLAN_KINDS)}[kind]",
        f"create or replace macro draw_discount(n) as "
        f"{_list(DISCOUNT_PERCENT)}[draw(n, 'discount', {len(DISCOUNT_PERCENT)}) + 1]",
        f"create or replace macro draw_record_type(n) as "
        f"{_list(int(t) for t in _slots(RECORD_TYPE_WEIGHTS))}"
        f"[draw(n, 'record_type', {sum(RECORD_TYPE_WEIGHTS.values())}) + 1]",
        # The heavy user recharges and spends, and never withdraws nor earns: an order filter
        # on those matches none of their orders.
        f"create or replace macro order_record_type(n) as "
        f"case when n < {sizes.heavy_orders} "
        f"then {_list(HEAVY_USER_RECORD_TYPES)}[draw(n, 'record_type', "
        f"{len(HEAVY_USER_RECORD_TYPES)}) + 1] else draw_record_type(n) end",
        f"create or replace macro draw_order_status(n) as "
        f"{_list(str(s) for s in _slots(ORDER_STATUS_WEIGHTS))}"
        f"[draw(n, 'order_status', {sum(ORDER_STATUS_WEIGHTS.values())}) + 1]",
        f"create or replace macro draw_recharge(n) as "
        f"{_list(RECHARGE_CENTS)}[draw(n, 'recharge', {len(RECHARGE_CENTS)}) + 1]",
        f"create or replace macro draw_typical_user(n, salt) as 2 + draw(n, salt, {typical_users})",
        f"create or replace macro draw_legacy_status(n) as "
        # An empty status is exported as an empty field, which the importer loads as NULL.
        f"{_list(status or None for status in _slots(LEGACY_STATUS_WEIGHTS))}"
        f"[draw(n, 'legacy_status', {sum(LEGACY_STATUS_WEIGHTS.values())}) + 1]",
        f"create or replace macro draw_unknown_status(n) as "
        f"{_list(UNKNOWN_LEGACY_STATUSES)}"
        f"[draw(n, 'unknown_status', {len(UNKNOWN_LEGACY_STATUSES)}) + 1]",
        # A permutation of the id modulo 1,000 (7919 is prime to 1,000).
        f"create or replace macro legacy_mess(id) as "
        f"{_list(mess_slots)}[(id * 7919 + {seed % 1000 * 104_729}) % 1000 + 1]",
        # Plans are spread evenly over the orders of their segment (the heavy user's, or the
        # typical users'): plan k of a segment was paid by order k * orders // plans of it.
        "create or replace macro plan_of_order(n, plans, orders) as "
        "case when (n * plans + orders - 1) // orders < plans "
        "and ((n * plans + orders - 1) // orders) * orders // plans = n "
        "then (n * plans + orders - 1) // orders end",
    ]


def _plan_numbers(sizes: Sizes) -> dict[str, int]:
    return {
        "heavy_plans": sizes.heavy_plans,
        "heavy_orders": sizes.heavy_orders,
        "typical_plans": sizes.typical_plans,
        "typical_orders": sizes.typical_orders,
    }


# The attributes of plan k, from its number alone (the orders query needs them too). Each
# layer adds columns the next one reads.
PLAN_ATTRIBUTES_SQL = """
select
    *,
    case when time_kind <> 'none' then pay_time end as active_time,
    case time_kind
        when 'past' then pay_time + to_months(role_months(plan_id))
        when 'running' then timestamp '{running_first}'
            + to_seconds(draw(k, 'expires', {running_span}))
    end as expire_time,
from (
    select
        *,
        create_time + to_seconds(60 + draw(k, 'paid', 1800)) as pay_time,
        order_number(plan_order, create_time) as order_id,
    from (
        select
            *,
            after_first_day(
                draw(k, 'created', case when time_kind = 'running' or time_kind = 'none'
                    then {seconds_to_as_of} else {past_purchases_before} end)
            ) as create_time,
            role_cents(plan_id) * draw_discount(k) // 100 as price_cents,
        from (
            select
                *,
                kind_status(kind) as status,
                kind_time(kind) as time_kind,
                kind_order_status(kind) as order_status,
                role_name(plan_id) as service_desc,
                case when k < {heavy_plans} then {heavy_user_id}
                    else draw_typical_user(k, 'user') end as user_id,
                case when k < {heavy_plans} then k * {heavy_orders} // {heavy_plans}
                    else {heavy_orders} + (k - {heavy_plans}) * {typical_orders}
                        // {typical_plans} end as plan_order,
            from (select *, draw_kind(k) as kind, draw_role(k, 'role') as plan_id from ({source}))
        )
    )
)
"""

PLANS_SQL = """
select
    k + 1 as id,
    user_id,
    plan_id,
    service_desc,
    price_cents as price,
    status,
    create_time,
    active_time,
    expire_time,
    order_id,
    cast(null as bigint) as legacy_id,
from ({plan_attributes})
"""

ORDERS_SQL = """
select
    order_number(n, create_time) as order_id,
    user_id,
    record_type,
    price_cents as actual_price,
    order_status,
    create_time,
    pay_time,
    case when order_status = 'refunded' then refunded_cents end as refunded_amount,
    case when order_status = 'refunded' then least(
        pay_time + to_seconds(86400 + draw(n, 'settled', 30 * 86400)),
        timestamp '{as_of}'
    ) end as settled_at,
from (
    select
        *,
        case
            when k is not null then plan_pay_time
            when order_status in {paid_statuses}
                then create_time + to_seconds(60 + draw(n, 'paid', 1800))
        end as pay_time,
        case when k is not null then price_cents
            else price_cents * (1 + draw(n, 'refunded', 100)) // 100 end as refunded_cents,
    from (
        select
            orders.n,
            orders.k,
            coalesce(plans.user_id, case when orders.n < {heavy_orders} then {heavy_user_id}
                else draw_typical_user(orders.n, 'order_user') end) as user_id,
            coalesce(plans.order_status, draw_order_status(orders.n)) as order_status,
            case when plans.k is not null then {expense} else order_record_type(orders.n) end
                as record_type,
            coalesce(
                plans.create_time,
                after_first_day(draw(orders.n, 'created', {seconds_to_as_of}))
            ) as create_time,
            case
                when plans.k is not null then plans.price_cents
                when order_record_type(orders.n) = {recharge} then draw_recharge(orders.n)
                else 100 + draw(orders.n, 'price', 499900)
            end as price_cents,
            case when plans.time_kind <> 'none' then plans.pay_time end as plan_pay_time,
        from ({numbered}) as orders
        left join ({plan_attributes}) as plans on plans.n = orders.n
    )
)
"""

# Each order, with the number of the plan it paid for, if it paid for one.
NUMBERED_ORDERS_SQL = """
select
    n,
    case when n < {heavy_orders} then plan_of_order(n, {heavy_plans}, {heavy_orders})
        else {heavy_plans} + plan_of_order(n - {heavy_orders}, {typical_plans}, {typical_orders})
    end as k,
from range({start}, {stop}) as numbers (n)
"""

# Legacy VIP rows: a "source" row gives user, role and create_time, which is the row itself
# except for the duplicates, which copy one of the 20 rows before them.
LEGACY_ROWS_SQL = """
select
    id,
    case when mess <> 'missing_user' then draw_typical_user(source, 'legacy_user') end
        as user_id,
    vip_role_id,
    case
        when mess = 'negative_price'
            then '-' || cents_text(1 + draw(id, 'negative', 99999))
        when price_style < 55 then null
        when price_style < 80 then cents_text(role_cents(vip_role_id) * draw_discount(id) // 100)
        -- The old code's floats, and half cents: the migration rounds them half up.
        when price_style < 90 and role_cents(vip_role_id) > 0
            then cast(cast(role_cents(vip_role_id) as double) / 100 - 2e-13 as varchar)
        when price_style < 95 then '0.005'
        else cents_text(role_cents(vip_role_id)) || '5'
    end as total_price,
    status,
    draw(id, 'is_active', 2) = 0 as is_active,
    create_time,
    active_time,
    case
        when mess = 'expire_before_active'
            then active_time - to_seconds(86400 * (1 + draw(id, 'early', 30)))
        when active_time is null then null
        when normalized_status = 'success' and draw(id, 'renewed', 2) = 0
            then timestamp '{running_first}' + to_seconds(draw(id, 'expires', {running_span}))
        else active_time + to_months(role_months(vip_role_id))
    end as expire_time,
    case when draw(source, 'order_no', 10) < 7
        then 'VIP' || strftime(create_time, '%Y%m%d') || lpad(cast(source as varchar), 9, '0')
    end as order_no,
from (
    select
        *,
        case
            when normalized_status in {activated}
                or mess = 'expire_before_active'
                or (normalized_status = '' and draw(id, 'blank_active', 2) = 0)
            then create_time + to_seconds(300 + draw(id, 'active', 36000))
        end as active_time,
    from (
        select
            *,
            lower(trim(coalesce(status, ''))) as normalized_status,
            case when mess = 'unknown_role' then {deleted_role_id}
                else draw_role(source, 'legacy_role') end as vip_role_id,
            timestamp '{legacy_first_day}' + to_seconds(draw(source, 'legacy_created',
                {legacy_span})) as create_time,
        from (
            select
                id,
                mess,
                case when mess = 'unknown_status' then draw_unknown_status(id)
                    else draw_legacy_status(id) end as status,
                draw(id, 'price_style', 100) as price_style,
                case when mess = 'duplicate' and id - 1 - draw(id, 'twin', 20) >= 1
                    then id - 1 - draw(id, 'twin', 20) else id end as source,
            from (select id, legacy_mess(id) as mess from range({start}, {stop}) as ids (id))
        )
    )
)
"""


def _in_list(values) -> str:
    return "(" + ", ".join(_literal(str(value)) for value in values) + ")"


def _constants(sizes: Sizes) -> dict:
    def seconds(start: datetime, end: datetime) -> int:
        return int((end - start).total_seconds())

    return _plan_numbers(sizes) | {
        "heavy_user_id": HEAVY_USER_ID,
        "as_of": AS_OF,
        "seconds_to_as_of": seconds(FIRST_DAY, AS_OF),
        "past_purchases_before": seconds(FIRST_DAY, PAST_PURCHASES_END),
        "running_first": RUNNING_EXPIRY[0],
        "running_span": seconds(*RUNNING_EXPIRY),
        "legacy_first_day": LEGACY_FIRST_DAY,
        "legacy_span": seconds(LEGACY_FIRST_DAY, AS_OF),
        "paid_statuses": _in_list(PAID_ORDER_STATUSES),
        "activated": _in_list(ACTIVATED_LEGACY_STATUSES),
        "deleted_role_id": DELETED_ROLE_ID,
        "expense": int(RecordType.EXPENSE),
        "recharge": int(RecordType.RECHARGE),
    }


def plans_query(sizes: Sizes, start: int, stop: int) -> str:
    """Plan records number start..stop-1 (id = number + 1), typed: cents, UTC timestamps."""
    constants = _constants(sizes)
    source = f"select k from range({start}, {stop}) as numbers (k)"
    attributes = PLAN_ATTRIBUTES_SQL.format(source=source, **constants)
    return PLANS_SQL.format(plan_attributes=attributes)


def orders_query(sizes: Sizes, start: int, stop: int) -> str:
    """Orders number start..stop-1; the heavy user's come first."""
    constants = _constants(sizes)
    numbered = NUMBERED_ORDERS_SQL.format(start=start, stop=stop, **constants)
    plan_source = f"select n, k from ({numbered}) where k is not null"
    attributes = PLAN_ATTRIBUTES_SQL.format(source=plan_source, **constants)
    return ORDERS_SQL.format(numbered=numbered, plan_attributes=attributes, **constants)


def legacy_query(sizes: Sizes, start: int, stop: int) -> str:
    """Legacy VIP rows with ids start..stop-1, times naive (Shanghai wall clock)."""
    return LEGACY_ROWS_SQL.format(start=start, stop=stop, **_constants(sizes))


@dataclass(frozen=True)
class Load:
    """One table to fill: its generated columns and how each is stored."""

    table: Table
    rows: int
    query: str
    # Column name -> "money" (cents generated), "instant" (UTC), "local" (naive), "flag".
    kinds: dict[str, str]


def loads(sizes: Sizes) -> list[Load]:
    instant = {"create_time": "instant", "active_time": "instant", "expire_time": "instant"}
    return [
        Load(
            legacy_user_vip,
            sizes.legacy_rows,
            legacy_query(sizes, 1, sizes.legacy_rows + 1),
            {
                "create_time": "local",
                "active_time": "local",
                "expire_time": "local",
                "is_active": "flag",
            },
        ),
        Load(
            item_record,
            sizes.plans,
            plans_query(sizes, 0, sizes.plans),
            instant | {"price": "money"},
        ),
        Load(
            payment_record,
            sizes.orders,
            orders_query(sizes, 0, sizes.orders),
            {
                "actual_price": "money",
                "refunded_amount": "money",
                "create_time": "instant",
                "pay_time": "instant",
                "settled_at": "instant",
            },
        ),
    ]


def stored_columns(load: Load, backend: str) -> str:
    """The select list that turns the typed columns into what `backend` stores."""
    stored = {
        "postgresql": {
            "money": "cents_text({0})",
            "instant": "strftime({0}, '%Y-%m-%d %H:%M:%S') || '+00'",
            "local": "strftime({0}, '%Y-%m-%d %H:%M:%S')",
            "flag": "{0}",
        },
        # As the wallet's column types store them: cents, and SQLAlchemy's datetime text.
        "sqlite": {
            "money": "{0}",
            "instant": "strftime({0}, '%Y-%m-%d %H:%M:%S.%f')",
            "local": "strftime({0}, '%Y-%m-%d %H:%M:%S.%f')",
            "flag": "cast({0} as integer)",
        },
    }[backend]
    expressions = []
    for column in load.table.c:
        kind = load.kinds.get(column.name)
        expressions.append(stored[kind].format(column.name) if kind else column.name)
    return ", ".join(expressions)


def duckdb_connection(seed: int, sizes: Sizes) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("set preserve_insertion_order = true")
    for macro in _macros(seed, sizes):
        connection.execute(macro)
    return connection


# --- building ----------------------------------------------------------------------------------


def _build(engine: Engine, url: str, scale: float, seed: int) -> Dataset:
    sizes = Sizes.at(scale)
    backend = engine.dialect.name
    print(f"datagen: building {backend} scale {scale:g} seed {seed}: {_describe(sizes)}")
    check_disk(engine, sizes)
    started = time.perf_counter()
    _clear(engine)
    _insert_catalogue(engine)
    generator = duckdb_connection(seed, sizes)
    try:
        for load in loads(sizes):
            load_started = time.perf_counter()
            if backend == "postgresql":
                _copy_postgresql(engine, generator, load)
            else:
                _insert_sqlite(engine, generator, load)
            print(
                f"datagen: {load.table.name}: {load.rows:,} rows "
                f"in {time.perf_counter() - load_started:.1f} s"
            )
    finally:
        generator.close()
    _finish(engine)
    seconds = time.perf_counter() - started
    dataset = Dataset(
        backend=backend,
        url=url,
        scale=scale,
        seed=seed,
        built_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        build_seconds=round(seconds, 1),
        **{
            key: getattr(sizes, key)
            for key in ("users", "plans", "orders", "legacy_rows", "heavy_orders", "heavy_plans")
        },
    )
    with engine.begin() as connection:
        connection.execute(delete(bench_dataset))
        fields = {
            key: value for key, value in vars(dataset).items() if key not in ("backend", "url")
        }
        connection.execute(
            insert(bench_dataset).values(generator_version=GENERATOR_VERSION, **fields)
        )
    print(f"datagen: built {_describe(dataset)} in {seconds:.1f} s")
    return dataset


WALLET_TABLES = (
    "bench_dataset",
    "transition_log",
    "refund_settlement",
    "migration_quarantine",
    "item_record",
    "payment_record",
    "legacy_user_vip",
    "plan",
    "legacy_vip_role",
)


def _clear(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(f"truncate {', '.join(WALLET_TABLES)} restart identity")
        else:
            for name in WALLET_TABLES:
                connection.exec_driver_sql(f"delete from {name}")


def _insert_catalogue(engine: Engine) -> None:
    """The legacy roles, and the plan catalogue the importer makes of them (8 rows)."""
    with engine.begin() as connection:
        connection.execute(
            insert(legacy_vip_role),
            [
                {
                    "id": role.id,
                    "vip_name": role.vip_name,
                    "price": role.price,
                    "service_month": role.service_month,
                    "is_active": role.is_active,
                }
                for role in CATALOGUE
            ],
        )
        connection.execute(
            insert(plan),
            [
                {
                    "id": role.id,
                    "name": role.vip_name.strip(" \t"),
                    "list_price": role.price,
                    "service_month": role.service_month,
                    "is_on_sale": role.is_active,
                }
                for role in CATALOGUE
            ],
        )


class _LineCounter:
    """A file read by COPY that prints how many rows went through, every million."""

    def __init__(self, file, table: str, total: int):
        self.file, self.table, self.total = file, table, total
        self.rows = 0
        self.next_report = 1_000_000

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.rows += data.count(b"\n")
        if self.rows >= self.next_report:
            print(f"datagen: {self.table}: {self.rows:,} / {self.total:,} rows", flush=True)
            self.next_report += 1_000_000
        return data

    def readline(self, size: int = -1) -> bytes:
        return self.file.readline(size)


def _copy_postgresql(engine: Engine, generator, load: Load) -> None:
    """COPY the rows, streamed from DuckDB through a pipe; keys and indexes are built after.

    One transaction: a load that fails leaves the table as it was, indexes included.
    """
    name = load.table.name
    columns = ", ".join(column.name for column in load.table.c)
    query = f"select {stored_columns(load, 'postgresql')} from ({load.query})"
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 1 << 20)
    failure: list[BaseException] = []

    def generate() -> None:
        try:
            generator.execute(f"copy ({query}) to '/dev/fd/{write_end}' (format csv, header false)")
        except BaseException as error:  # raised again by the loading thread
            failure.append(error)
        finally:
            # The reader sees the end of the rows (or of a failed run) once this is closed.
            os.close(write_end)

    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        rebuild = _drop_keys_and_indexes(cursor, name)
        # COPY FREEZE needs the table emptied in the same transaction.
        cursor.execute(f"truncate {name}")
        writer = threading.Thread(target=generate, name=f"datagen-{name}")
        writer.start()
        with os.fdopen(read_end, "rb") as rows:
            try:
                cursor.copy_expert(
                    f"copy {name} ({columns}) from stdin with (format csv, freeze true)",
                    _LineCounter(rows, name, load.rows),
                    size=1 << 20,
                )
            except BaseException:
                generator.interrupt()
                raise
            finally:
                # Closing the read end stops a writer still blocked on a full pipe.
                rows.close()
                writer.join()
        if failure:
            raise failure[0]
        started = time.perf_counter()
        cursor.execute("set maintenance_work_mem = '512MB'")
        for statement in rebuild:
            cursor.execute(statement)
        connection.commit()
        print(f"datagen: {name}: keys and indexes in {time.perf_counter() - started:.1f} s")
    finally:
        connection.rollback()
        connection.close()


def _drop_keys_and_indexes(cursor, table: str) -> list[str]:
    """Drop the table's keys, foreign keys and indexes; returns the statements that rebuild them.

    Read from the catalogue, so indexes added by later revisions are rebuilt too.
    """
    cursor.execute(
        """
        select conname, contype, conrelid::regclass::text, pg_get_constraintdef(oid)
        from pg_constraint
        where (conrelid = %(table)s::regclass and contype in ('p', 'u', 'f'))
            or (confrelid = %(table)s::regclass and contype = 'f')
        """,
        {"table": table},
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        select indexrelid::regclass::text, pg_get_indexdef(indexrelid)
        from pg_index
        where indrelid = %(table)s::regclass
            and indexrelid not in (select conindid from pg_constraint)
        """,
        {"table": table},
    )
    indexes = cursor.fetchall()
    foreign = [c for c in constraints if c[1] == "f"]
    keys = [c for c in constraints if c[1] != "f"]
    for name, _, owner, _ in foreign + keys:
        cursor.execute(f'alter table {owner} drop constraint "{name}"')
    for name, _ in indexes:
        cursor.execute(f"drop index {name}")
    return [
        *(
            f'alter table {owner} add constraint "{name}" {definition}'
            for name, _, owner, definition in keys
        ),
        *(definition for _, definition in indexes),
        *(
            f'alter table {owner} add constraint "{name}" {definition}'
            for name, _, owner, definition in foreign
        ),
    ]


def _insert_sqlite(engine: Engine, generator, load: Load, batch: int = 50_000) -> None:
    """Insert the rows in batches, with the table's own indexes built after."""
    name = load.table.name
    columns = [column.name for column in load.table.c]
    statement = (
        f"insert into {name} ({', '.join(columns)}) values ({', '.join('?' * len(columns))})"
    )
    # In key order: SQLite keeps the primary key's index as rows arrive, and appending to it
    # is much cheaper than inserting all over it.
    key = ", ".join(column.name for column in load.table.primary_key.columns)
    result = generator.execute(
        f"select {stored_columns(load, 'sqlite')} from ({load.query}) order by {key}"
    )
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("pragma synchronous = off")
        cursor.execute("pragma cache_size = -262144")
        cursor.execute(
            "select name, sql from sqlite_master "
            "where type = 'index' and tbl_name = ? and sql is not null",
            (name,),
        )
        indexes = cursor.fetchall()
        cursor.execute("begin immediate")
        for index_name, _ in indexes:
            cursor.execute(f"drop index {index_name}")
        done = 0
        while rows := result.fetchmany(batch):
            cursor.executemany(statement, rows)
            done += len(rows)
            if done % 1_000_000 < batch:
                print(f"datagen: {name}: {done:,} / {load.rows:,} rows", flush=True)
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("commit")
    finally:
        connection.close()


def _finish(engine: Engine) -> None:
    """Move the plan record id sequence past the loaded ids, and refresh the statistics."""
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(
                "select setval(pg_get_serial_sequence('item_record', 'id'), "
                "coalesce((select max(id) from item_record), 0) + 1, false)"
            )
            connection.exec_driver_sql("vacuum analyze")
    else:
        connection = engine.raw_connection()
        try:
            connection.execute("analyze")
            connection.execute("pragma wal_checkpoint(truncate)")
        finally:
            connection.close()
    print(f"datagen: statistics in {time.perf_counter() - started:.1f} s")


# --- the command -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), required=True)
    parser.add_argument(
        "--scale", type=float, help="1.0 is the production size (default 1.0, SQLite 0.1)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rebuild", action="store_true", help="build even when it exists")
    options = parser.parse_args(argv)
    try:
        dataset = ensure_dataset(
            options.backend, scale=options.scale, seed=options.seed, rebuild=options.rebuild
        )
    except NotEnoughDiskError as error:
        print(f"datagen: {error}", file=sys.stderr)
        return 2
    print(f"datagen: {make_url(dataset.url).render_as_string(hide_password=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
