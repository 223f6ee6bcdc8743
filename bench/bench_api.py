"""The list endpoints under HTTP load on PostgreSQL, against the plain-way peer.

Serves `wallet serve` (production settings, `--workers`, `--pool-size`) on the benchmark
dataset and drives it with wrk (bench/load.py):

1. typical users (2..users), random endpoint and filters, page 1: the maximum throughput at
   32 connections, then p50/p99 at a fixed arrival rate of half that maximum (target p99 under
   25 ms);
2. the heavy user (100,000 orders): the last page of orders, the middle page (the deepest
   walk, since a page past the middle is read from the oldest end), and a filter that matches
   none of their orders: maximum throughput at 32 connections, and p50/p99 of 10 such requests
   a second while typical traffic keeps arriving at its fixed rate (target p99 under 50 ms);
3. the same request lists against bench/peer_app.py (the plain way: ORM query per request,
   `count()` + offset/limit on the tables), served the same way, for the throughput ratios.

The EXPLAIN (ANALYZE, BUFFERS) of both sides' heavy queries, and SQLite's EXPLAIN QUERY PLAN
of ours, are printed and saved to bench/results/bench_api_explain.txt.

    .venv/bin/python -m bench.bench_api [--duration S] [--workers N] [--pool-size N] [--dev]

`--dev` (or a missing bench/datagen.py) builds a smaller dataset of its own instead.
"""

import argparse
import math
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import product

from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import postgresql

from bench.common import RESULTS_DIR, Figure, postgres_database_url, save
from bench.load import WrkResult, run_wrk, serving, token_for
from wallet.db import make_engine
from wallet.schema import upgrade
from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.tables import payment_record
from wallet_api import queries
from wallet_api.deps import DEFAULT_PER_PAGE, Paging

CONNECTIONS = 32
TYPICAL_USERS_SAMPLED = 2_000
TYPICAL_P99_TARGET_MS = 25
HEAVY_P99_TARGET_MS = 50
# The heavy user's requests are measured among typical traffic: this many per second, on a few
# connections of their own, while typical requests arrive at their fixed rate.
HEAVY_RATE = 10
HEAVY_CONNECTIONS = 4
HEAVY_WORKLOADS = ("heavy last page", "heavy middle page", "heavy nothing")
PEER_APP = "bench.peer_app:create_app"
EXPLAIN_PATH = RESULTS_DIR / "bench_api_explain.txt"


@dataclass(frozen=True)
class DevDataset:
    """The smaller dataset this script builds when bench/datagen.py is not there."""

    url: str
    heavy_user_id: int
    users: int


def load_dataset(dev: bool):
    if not dev:
        try:
            from bench.datagen import ensure_dataset
        except ImportError:
            print("bench/datagen.py is missing: building the smaller dev dataset instead")
        else:
            return ensure_dataset("postgresql", scale=1.0, seed=1)
    return ensure_dev_dataset()


# The dev dataset: 100,000 users, 2,000,000 orders, 300,000 plans; user 1 holds every 20th
# order (100,000) and every 150th plan (2,000), spread over the table as a real user's are.
DEV_USERS, DEV_ORDERS, DEV_PLANS = 100_000, 2_000_000, 300_000
DEV_HEAVY_ORDERS, DEV_HEAVY_PLANS = 100_000, 2_000
DEV_ORDERS_SQL = """
insert into payment_record (
    order_id, user_id, record_type, actual_price, order_status, create_time, pay_time
)
select
    'PB' || lpad(n::text, 14, '0'),
    case when n % (:orders / :heavy_orders) = 0 then 1
        else 2 + (n::bigint * 7919) % (:users - 1) end,
    -- the heavy user has recharges and expenses only, so a withdrawal filter matches nothing
    case when n % (:orders / :heavy_orders) = 0 then 1 + 2 * (n % 2) else 1 + (n * 31) % 4 end,
    ((n::bigint * 104729) % 2000000) * 0.01,
    (array['unpay', 'paid', 'paid', 'paid', 'fail', 'refund', 'refunded', 'cancel_refund',
        'closed', 'canceled', 'deleted'])[1 + (n::bigint * 13) % 11],
    timestamptz '2020-01-01 00:00:00+00' + make_interval(secs => (n::bigint * 104723) % 189216000),
    null
from generate_series(1, :orders) as n
"""
DEV_PLANS_SQL = """
insert into item_record (
    id, user_id, service_desc, price, status, create_time, active_time, expire_time, order_id
)
select
    n,
    case when n % (:plans / :heavy_plans) = 0 then 1
        else 2 + (n::bigint * 7907) % (:users - 1) end,
    (array['月度会员', '季度会员', '年度会员'])[1 + n % 3],
    (array[30, 88, 298])[1 + n % 3],
    (array['applying', 'success', 'success', 'success', 'refund', 'refunded', 'cancel_refund',
        'closed', 'canceled', 'expired', 'deleted'])[1 + (n::bigint * 17) % 11],
    bought,
    bought + interval '1 minute',
    bought + interval '1 minute' + make_interval(months => 1 + n % 12),
    'PB' || lpad(n::text, 14, '0')
from generate_series(1, :plans) as n
cross join lateral (
    select timestamptz '2020-01-01 00:00:00+00'
        + make_interval(secs => (n::bigint * 104717) % 220000000) as bought
) as purchase
"""


def ensure_dev_dataset() -> DevDataset:
    url = postgres_database_url("wallet_bench_dev")
    engine = make_engine(url)
    upgrade(engine)
    sizes = {
        "users": DEV_USERS,
        "orders": DEV_ORDERS,
        "plans": DEV_PLANS,
        "heavy_orders": DEV_HEAVY_ORDERS,
        "heavy_plans": DEV_HEAVY_PLANS,
    }
    with engine.begin() as connection:
        if not connection.scalar(text("select exists (select from payment_record)")):
            print(f"building the dev dataset in wallet_bench_dev: {sizes}")
            connection.execute(text(DEV_ORDERS_SQL), sizes)
            connection.execute(text(DEV_PLANS_SQL), sizes)
            connection.execute(
                text("select setval(pg_get_serial_sequence('item_record', 'id'), :plans)"), sizes
            )
    engine.dispose()
    return DevDataset(url=url, heavy_user_id=1, users=DEV_USERS)


def prepare(engine: Engine) -> None:
    """Schema at head (the listing indexes), and a visibility map for index-only scans."""
    upgrade(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("vacuum (analyze) item_record, payment_record"))


def typical_requests(users: int, seed: int = 1) -> list[tuple[str, str]]:
    """Page 1 of a random endpoint with random filters, for sampled typical users."""
    pick = random.Random(seed)
    sampled = pick.sample(range(2, users + 1), min(TYPICAL_USERS_SAMPLED, users - 1))
    requests = []
    for user_id in sampled:
        token = token_for(user_id)
        if pick.random() < 0.5:
            status = pick.choice([None, *PlanStatus])
            query = f"?status={status.value}" if status else ""
            requests.append((f"/payment/service_list/{query}", token))
        else:
            record_type = pick.choice([None, *RecordType])
            order_status = pick.choice([None, *OrderStatus])
            filters = []
            if record_type is not None:
                filters.append(f"record_type={int(record_type)}")
            if order_status is not None:
                filters.append(f"order_status={order_status.value}")
            query = "?" + "&".join(filters) if filters else ""
            requests.append((f"/payment/payment_record/{query}", token))
    return requests


def filter_matching_nothing(engine: Engine, user_id: int) -> tuple[RecordType, OrderStatus]:
    """A record type and order status that none of the user's orders has."""
    with engine.connect() as connection:
        present = set(
            connection.execute(
                select(payment_record.c.record_type, payment_record.c.order_status)
                .where(payment_record.c.user_id == user_id)
                .distinct()
            ).all()
        )
    for record_type, order_status in product(RecordType, OrderStatus):
        if (int(record_type), order_status.value) not in present:
            return record_type, order_status
    raise RuntimeError(f"user {user_id} has orders of every record type and status")


def last_page_of_orders(engine: Engine, user_id: int) -> int:
    listing = queries.orders_of(user_id, None, None)
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).select_from(listing.view).where(*listing.conditions)
        )
    return max(1, math.ceil(count / DEFAULT_PER_PAGE))


def explain(engine: Engine, label: str, statement) -> str:
    sql = str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    with engine.connect() as connection:
        plan = connection.execute(text(f"explain (analyze, buffers) {sql}")).scalars().all()
    return f"-- {label}\n{sql};\n\n" + "\n".join(plan) + "\n"


class CapturedStatements:
    """Stands in for a connection to record the statements `read_page` runs, then runs them."""

    def __init__(self, connection, count: int | None = None) -> None:
        self.connection = connection
        self.statements = []
        # The count to answer instead of running it (an empty database has no rows to page).
        self.count = count

    def scalar(self, statement):
        self.statements.append(statement)
        return self.count if self.count is not None else self.connection.scalar(statement)

    def execute(self, statement):
        self.statements.append(statement)
        return self.connection.execute(statement)


def peer_statements(user_id: int, record_type, order_status, page: int) -> list:
    """The SQL the peer's `query.count()` and `offset().limit()` send, as its ORM builds it."""
    from sqlalchemy.orm import Session

    from bench.peer_app import Order, orders_query

    query = orders_query(Session(), user_id, record_type, order_status)
    count = select(func.count()).select_from(query.statement.subquery())
    page_query = (
        query.order_by(Order.create_time.desc(), Order.order_id.desc())
        .offset((page - 1) * DEFAULT_PER_PAGE)
        .limit(DEFAULT_PER_PAGE)
    )
    return [count, page_query.statement]


def heavy_cases(last_page: int, nothing) -> list[tuple]:
    """(label, record_type, order_status, page) of the heavy user's requests."""
    middle = (last_page + 1) // 2
    return [
        (f"last page ({last_page}) of the heavy user's orders", None, None, last_page),
        (f"middle page ({middle}) of the heavy user's orders", None, None, middle),
        (
            f"the heavy user's orders, record_type={int(nothing[0])} "
            f"order_status={nothing[1].value} (matches nothing)",
            *nothing,
            1,
        ),
    ]


def explain_heavy_queries(engine: Engine, user_id: int, last_page: int, nothing) -> str:
    report = []
    for label, record_type, order_status, page in heavy_cases(last_page, nothing):
        with engine.connect() as connection:
            captured = CapturedStatements(connection)
            listing = queries.orders_of(user_id, record_type, order_status)
            queries.read_page(captured, listing, Paging(page, DEFAULT_PER_PAGE))
        for step, statement in zip(("count", "page"), captured.statements, strict=False):
            report.append(explain(engine, f"wallet API, {label}: {step}", statement))
        peer = peer_statements(user_id, record_type, order_status, page)
        for step, statement in zip(("count", "page"), peer, strict=True):
            report.append(explain(engine, f"peer, {label}: {step}", statement))
    return "\n".join(report)


def explain_on_sqlite(user_id: int, last_page: int, nothing) -> str:
    """SQLite's plans for the same statements, on an empty database at the head revision."""
    report = []
    with tempfile.TemporaryDirectory(prefix="wallet-bench-sqlite-") as folder:
        engine = make_engine(f"sqlite:///{folder}/plans.db")
        upgrade(engine)
        with engine.connect() as connection:
            for label, record_type, order_status, page in heavy_cases(last_page, nothing):
                captured = CapturedStatements(connection, count=last_page * DEFAULT_PER_PAGE)
                listing = queries.orders_of(user_id, record_type, order_status)
                queries.read_page(captured, listing, Paging(page, DEFAULT_PER_PAGE))
                for step, statement in zip(("count", "page"), captured.statements, strict=False):
                    sql = str(
                        statement.compile(
                            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
                        )
                    )
                    plan = connection.exec_driver_sql(f"explain query plan {sql}").all()
                    lines = "\n".join(row[-1] for row in plan)
                    report.append(f"-- SQLite, {label}: {step}\n{sql};\n\n{lines}\n")
        engine.dispose()
    return "\n".join(report)


def measure(base_url, requests, duration_s: float, rate: float | None = None) -> WrkResult:
    run_wrk(base_url, requests, CONNECTIONS, min(3, duration_s), rate=rate)  # warm-up
    result = run_wrk(base_url, requests, CONNECTIONS, duration_s, rate=rate)
    print(f"  {result.summary()}", flush=True)
    return result


def measure_alongside(
    base_url, requests, rate: float, background, background_rate: float, duration_s: float
) -> WrkResult:
    """`requests` at `rate` on a few connections while `background` runs at its own rate."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        traffic = pool.submit(
            run_wrk, base_url, background, CONNECTIONS, duration_s + 5, rate=background_rate
        )
        time.sleep(2)
        result = run_wrk(base_url, requests, HEAVY_CONNECTIONS, duration_s, rate=rate)
        print(f"  {result.summary()}", flush=True)
        print(f"  (typical traffic meanwhile: {traffic.result().summary()})", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--pool-size", type=int, default=16, help="connections per worker")
    parser.add_argument(
        "--heavy-rate", type=float, default=HEAVY_RATE, help="heavy requests per second"
    )
    parser.add_argument("--dev", action="store_true", help="the smaller dev dataset")
    args = parser.parse_args(argv)
    command = "python -m bench.bench_api " + " ".join(argv if argv is not None else sys.argv[1:])

    dataset = load_dataset(args.dev)
    engine = make_engine(dataset.url)
    started = time.perf_counter()
    prepare(engine)
    print(f"schema at head and tables vacuumed in {time.perf_counter() - started:.1f} s")
    heavy = dataset.heavy_user_id
    last_page = last_page_of_orders(engine, heavy)
    nothing = filter_matching_nothing(engine, heavy)
    with engine.connect() as connection:
        orders = connection.scalar(text("select count(*) from payment_record"))
        plans = connection.scalar(text("select count(*) from item_record"))
    data_size = (
        f"{dataset.users:,} users, {orders:,} orders, {plans:,} plans; "
        f"heavy user {heavy}: {last_page:,} pages of orders"
    )
    print(data_size)

    plans_text = explain_heavy_queries(engine, heavy, last_page, nothing)
    plans_text += "\n" + explain_on_sqlite(heavy, last_page, nothing)
    engine.dispose()
    RESULTS_DIR.mkdir(exist_ok=True)
    EXPLAIN_PATH.write_text(plans_text, encoding="utf-8")
    print(plans_text)

    heavy_token = token_for(heavy)
    workloads = {
        "typical": typical_requests(dataset.users),
        "heavy last page": [(f"/payment/payment_record/?page={last_page}", heavy_token)],
        "heavy middle page": [
            (f"/payment/payment_record/?page={(last_page + 1) // 2}", heavy_token)
        ],
        "heavy nothing": [
            (
                f"/payment/payment_record/?record_type={int(nothing[0])}"
                f"&order_status={nothing[1].value}",
                heavy_token,
            )
        ],
    }
    serve_options = {"workers": args.workers, "pool_size": args.pool_size, "max_overflow": 0}
    ours: dict[str, WrkResult] = {}
    ours_at_rate: dict[str, WrkResult] = {}
    with serving(dataset.url, **serve_options) as base_url:
        for name, requests in workloads.items():
            print(f"wallet API, {name}:", flush=True)
            ours[name] = measure(base_url, requests, args.duration)
        typical_rate = ours["typical"].rps / 2
        print(f"wallet API, typical at {typical_rate:,.0f} req/s:", flush=True)
        ours_at_rate["typical"] = measure(
            base_url, workloads["typical"], args.duration, rate=typical_rate
        )
        for name in HEAVY_WORKLOADS:
            print(
                f"wallet API, {name} at {args.heavy_rate:g} req/s, "
                f"alongside typical at {typical_rate:,.0f} req/s:",
                flush=True,
            )
            ours_at_rate[name] = measure_alongside(
                base_url,
                workloads[name],
                args.heavy_rate,
                workloads["typical"],
                typical_rate,
                args.duration,
            )
    peer: dict[str, WrkResult] = {}
    with serving(dataset.url, app=PEER_APP, **serve_options) as base_url:
        for name, requests in workloads.items():
            print(f"peer, {name}:", flush=True)
            peer[name] = measure(base_url, requests, args.duration)

    figures = []
    targets = {
        "typical": TYPICAL_P99_TARGET_MS,
        "heavy last page": HEAVY_P99_TARGET_MS,
        "heavy middle page": HEAVY_P99_TARGET_MS,
        "heavy nothing": HEAVY_P99_TARGET_MS,
    }
    for name, result in ours.items():
        figures.append(
            Figure(
                f"{name}: max throughput at {CONNECTIONS} connections",
                result.rps,
                "req/s",
                peer="peer_app (ORM count + offset)",
                ratio=result.rps / peer[name].rps if peer[name].rps else None,
            )
        )
        paced = ours_at_rate[name]
        pacing = f"at {paced.rate:,.0f} req/s"
        if name != "typical":
            pacing += f" alongside typical at {typical_rate:,.0f} req/s"
        figures.append(Figure(f"{name}: p50 {pacing}", paced.p50_ms, "ms"))
        target = targets[name]
        figures.append(
            Figure(
                f"{name}: p99 {pacing}",
                paced.p99_ms,
                "ms",
                target=f"< {target} ms",
                met=paced.requests > 0
                and paced.p99_ms < target
                and paced.errors == 0
                and paced.non_2xx == 0,
            )
        )
    notes = (
        f"{data_size}; wallet serve --workers {args.workers}, pool {args.pool_size} per worker; "
        f"wrk, {CONNECTIONS} connections, {args.duration:g} s per run; typical fixed rate: half "
        f"its maximum; heavy requests at {args.heavy_rate:g} req/s on {HEAVY_CONNECTIONS} "
        "connections while typical traffic runs at that fixed rate; rates paced by wrk's "
        "delay() (coordinated omission not corrected); heavy 'nothing' filter: "
        f"record_type={int(nothing[0])}&order_status={nothing[1].value}"
    )
    save("bench_api", command, figures, notes)


if __name__ == "__main__":
    main()
