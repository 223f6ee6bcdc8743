"""How fast the order-status-by-record-type report is on ten million orders, DuckDB vs pandas.

Generates the orders straight into a warehouse table (deterministic: every value is a hash of
the row number), times `wallet_reports.order_status_by_record_type` (connection, query and the
DataFrame it returns), then the same aggregation in plain pandas on the same rows already in a
DataFrame. Target: under a second for DuckDB on a 2-core machine.

    .venv/bin/python -m bench.bench_order_status [--orders N] [--repeat R]
"""

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

import wallet_reports as reports
from bench.common import Figure, save
from pipelines.warehouse import Warehouse, replace_vocabulary
from wallet.statuses import OrderStatus, RecordType

# A position 1..size chosen by hashing the row number with a salt: the same on every run.
PICK = """
create or replace macro pick(n, salt, size) as cast(hash(n, salt) % size as bigint) + 1
"""
GENERATE_ORDERS = """
create table payment_record as
select
    'PB' || lpad(cast(n as varchar), 14, '0') as order_id,
    cast(1000 + n % 200000 as bigint) as user_id,
    cast($record_types[pick(n, 'type', len($record_types))] as smallint) as record_type,
    cast((hash(n, 'price') % 2000000) * 0.01 as decimal(14, 2)) as actual_price,
    $statuses[pick(n, 'status', len($statuses))] as order_status,
    timestamptz '2015-01-01 00:00:00+00'
        + to_seconds(cast(hash(n, 'created') % 347155200 as bigint)) as create_time,
    cast(null as timestamptz) as pay_time,
    cast(null as decimal(14, 2)) as refunded_amount,
    cast(null as timestamptz) as settled_at,
from range($orders) as orders (n)
"""
# Refunded orders get back between nothing and all of their amount.
SETTLE_REFUNDS = """
update payment_record
set refunded_amount = cast(actual_price * ((hash(order_id) % 100 + 1) / 100.0) as decimal(14, 2))
where order_status = 'refunded'
"""


def generate(warehouse: Warehouse, orders: int) -> None:
    with warehouse.connect(read_only=False) as connection:
        connection.execute(PICK)
        connection.execute(
            GENERATE_ORDERS,
            {
                "orders": orders,
                "record_types": [int(kind) for kind in RecordType],
                "statuses": [status.value for status in OrderStatus],
            },
        )
        connection.execute(SETTLE_REFUNDS)
        replace_vocabulary(connection)


def best_of(repeat: int, run) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - started)
    return min(timings), result


def pandas_order_status(orders: pd.DataFrame) -> pd.DataFrame:
    grouped = orders.groupby(["record_type", "order_status"], observed=True).agg(
        orders=("order_id", "size"),
        amount_cny=("actual_price", "sum"),
        refunded_amount_cny=("refunded_amount", "sum"),
    )
    grouped["share"] = grouped["orders"] / grouped.groupby(level="record_type")["orders"].transform(
        "sum"
    )
    return grouped.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wallet-bench-") as directory:
        warehouse = Warehouse(Path(directory) / "bench.duckdb", "Asia/Shanghai")
        started = time.perf_counter()
        generate(warehouse, options.orders)
        print(f"generated {options.orders:,} orders in {time.perf_counter() - started:.1f} s")

        first = time.perf_counter()
        reports.order_status_by_record_type(warehouse)
        first = time.perf_counter() - first
        duck_seconds, duck = best_of(
            options.repeat, lambda: reports.order_status_by_record_type(warehouse)
        )

        with warehouse.connect() as connection:
            orders = connection.execute(
                "select order_id, record_type, order_status, actual_price, refunded_amount "
                "from payment_record"
            ).df()
        pandas_seconds, by_pandas = best_of(options.repeat, lambda: pandas_order_status(orders))

    assert duck["orders"].sum() == by_pandas["orders"].sum() == options.orders
    print(f"duckdb first run (cold): {first:.3f} s")
    save(
        "bench_order_status",
        f"make bench (python -m bench.bench_order_status --orders {options.orders})",
        [
            Figure(
                f"order status by record type, {options.orders:,} orders, DuckDB",
                duck_seconds,
                "s",
                peer="faster than pandas on the same rows in memory",
                ratio=pandas_seconds / duck_seconds,
                target="< 1 s",
                met=duck_seconds < 1,
            ),
            Figure(
                f"order status by record type, {options.orders:,} orders, pandas",
                pandas_seconds,
                "s",
            ),
        ],
    )


if __name__ == "__main__":
    main()
