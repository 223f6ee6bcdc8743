"""expire-plans with a million plans due, against one bare UPDATE, while the API is under load.

On two copies of the benchmark dataset (PostgreSQL `create database … template …`), made
identical with the same plans due (every k-th plan set to success or cancel_refund with an
expire_time in the past, every other running plan's expire_time pushed into the future):

1. the peer: one bare `update item_record set status = 'expired' where …` on the first copy;
2. the expire-plans flow on the second copy, under a Prefect test server started first (its
   start-up is not counted: the figure is the flow call's own time), while `wallet serve`
   on the same copy answers typical list requests at a fixed rate (bench_api's, by default):
   the API's p99 while the flow runs, measured by wrk in short slices (the worst slice counts),
   target under 50 ms, and the p99 of the same load just before, for comparison.

    .venv/bin/python -m bench.bench_expire [--due N] [--batch-size N] [--rate R] [--dev]
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, make_url, text

from bench.bench_api import load_dataset, typical_requests
from bench.common import RESULTS_DIR, Figure, postgres_admin_url, postgres_database_url, save
from bench.load import WrkResult, run_wrk, serving
from wallet.db import make_engine

DUE_PLANS = 1_000_000
API_P99_TARGET_MS = 50
CONNECTIONS = 32
SLICE_S = 5
DEFAULT_RATE = 100
FLOW_COPY, UPDATE_COPY = "wallet_bench_expire_flow", "wallet_bench_expire_update"

# Nothing else is due; then every k-th plan (by id) is, since a day at most.
PUSH_RUNNING_PLANS_OUT = """
update item_record set expire_time = :as_of + interval '365 days'
where status in ('success', 'cancel_refund') and expire_time <= :as_of
"""
MAKE_PLANS_DUE = """
update item_record
set
    status = case when id % 4 = 0 then 'cancel_refund' else 'success' end,
    expire_time = :as_of - make_interval(secs => 1 + id % 86400)
where id in (
    select id from (
        select id, row_number() over (order by id) as position from item_record
    ) as numbered
    where position % :every = 0
    order by id
    limit :due
)
"""
# How each batch of the flow picks its plans (wallet.transitions.move with the order of
# pipelines.scheduled_moves.expire_plans_batch), explained before the flow runs.
BATCH_PICK = """
select id from item_record
where status = 'success' and expire_time <= :as_of
order by expire_time, id
limit :size
for update skip locked
"""
EXPLAIN_PATH = RESULTS_DIR / "bench_expire_explain.txt"
BARE_UPDATE = """
update item_record set status = 'expired'
where status in ('success', 'cancel_refund') and expire_time <= :as_of
"""


def copy_database(template: str, name: str) -> str:
    """A fresh database `name`, identical to `template` (which nobody may be connected to).

    `strategy file_copy` (PostgreSQL 15+) copies the files instead of writing every page to
    the WAL, which on a 6 GB dataset is the difference between seconds and minutes.
    """
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'drop database if exists "{name}"'))
        try:
            connection.execute(
                text(f'create database "{name}" template "{template}" strategy file_copy')
            )
        except Exception as error:
            raise SystemExit(
                f"cannot copy {template}: {getattr(error, 'orig', error)}(close the sessions "
                "on it, e.g. a server or a test using the dataset, and run again)"
            ) from None
    admin.dispose()
    return postgres_database_url(name)


def make_plans_due(url: str, due: int, as_of: datetime) -> tuple[int, int]:
    """Exactly `due` plans due, every k-th by id; returns how many and k."""
    engine = make_engine(url)
    with engine.begin() as connection:
        plans = connection.scalar(text("select count(*) from item_record"))
        if plans < due:
            raise SystemExit(f"the dataset has {plans:,} plans, fewer than --due {due:,}")
        connection.execute(text(PUSH_RUNNING_PLANS_OUT), {"as_of": as_of})
        every = plans // due
        made_due = connection.execute(
            text(MAKE_PLANS_DUE), {"as_of": as_of, "every": every, "due": due}
        ).rowcount
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("vacuum (analyze) item_record"))
    engine.dispose()
    return made_due, every


def explain_batch_pick(url: str, as_of: datetime, size: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one batch's pick; rolled back, so nothing stays locked."""
    engine = make_engine(url)
    with engine.connect() as connection:
        plan = connection.execute(
            text(f"explain (analyze, buffers) {BATCH_PICK}"), {"as_of": as_of, "size": size}
        ).scalars()
        report = f"-- one batch's pick, {size:,} plans\n{BATCH_PICK.strip()};\n\n" + "\n".join(plan)
        connection.rollback()
    engine.dispose()
    return report + "\n"


def time_bare_update(url: str, as_of: datetime) -> tuple[float, int]:
    engine = make_engine(url)
    with engine.begin() as connection:
        started = time.perf_counter()
        moved = connection.execute(text(BARE_UPDATE), {"as_of": as_of}).rowcount
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds, moved


class SlicedLoad:
    """wrk at a fixed rate in back-to-back slices, on a thread, until stopped."""

    def __init__(self, base_url: str, requests, rate: float) -> None:
        self.base_url, self.requests, self.rate = base_url, requests, rate
        self.slices: list[tuple[float, float, WrkResult]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            result = run_wrk(self.base_url, self.requests, CONNECTIONS, SLICE_S, rate=self.rate)
            self.slices.append((started, time.monotonic(), result))

    def __enter__(self) -> "SlicedLoad":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stopping.set()
        self.thread.join()

    def during(self, start: float, end: float) -> list[WrkResult]:
        return [result for began, ended, result in self.slices if began < end and ended > start]


def fixed_rate_of_bench_api() -> float:
    """The typical workload's fixed rate of the last bench_api run, if there was one."""
    path = RESULTS_DIR / "bench_api.json"
    if path.exists():
        for figure in json.loads(path.read_text(encoding="utf-8"))["figures"]:
            if figure["metric"].startswith("typical: p99 at"):
                return float(figure["metric"].split(" at ")[1].split()[0].replace(",", ""))
    return DEFAULT_RATE


def run_flow_under_load(url: str, requests, rate: float, batch_size: int | None):
    """The flow's own seconds, its report, and the wrk slices before and during it."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="wallet-bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["WALLET_DATABASE_URL"] = url
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.flows.transitions import DEFAULT_BATCH_SIZE, expire_plans
    from wallet.db import get_engine
    from wallet.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    with (
        prefect_test_harness(server_startup_timeout=120),
        serving(url, workers=2, pool_size=16, max_overflow=0) as base_url,
    ):
        run_wrk(base_url, requests, CONNECTIONS, 3, rate=rate)  # warm-up
        with SlicedLoad(base_url, requests, rate) as load:
            time.sleep(2 * SLICE_S + 1)
            flow_started = time.monotonic()
            report = expire_plans(batch_size=batch_size or DEFAULT_BATCH_SIZE)
            flow_ended = time.monotonic()
            time.sleep(1)
        before = [result for _, ended, result in load.slices if ended <= flow_started]
        during = load.during(flow_started, flow_ended)
    get_engine().dispose()
    return flow_ended - flow_started, report, before, during


def worst(results: list[WrkResult]) -> WrkResult:
    return max(results, key=lambda result: result.p99_ms)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--due", type=int, default=DUE_PLANS, help="plans due")
    parser.add_argument("--batch-size", type=int, default=None, help="the flow's batch size")
    parser.add_argument("--rate", type=float, default=None, help="API requests per second")
    parser.add_argument("--dev", action="store_true", help="the smaller dev dataset")
    args = parser.parse_args(argv)
    command = "python -m bench.bench_expire " + " ".join(argv if argv is not None else sys.argv[1:])
    rate = args.rate or fixed_rate_of_bench_api()

    dataset = load_dataset(args.dev)
    template = make_url(dataset.url).database
    as_of = datetime.now(UTC) - timedelta(minutes=1)
    flow_url = copy_database(template, FLOW_COPY)
    made_due, every = make_plans_due(flow_url, args.due, as_of)
    update_url = copy_database(FLOW_COPY, UPDATE_COPY)
    print(f"{made_due:,} plans due in {FLOW_COPY} and {UPDATE_COPY} (copies of {template})")

    plan = explain_batch_pick(flow_url, as_of, args.batch_size or 10_000)
    EXPLAIN_PATH.write_text(plan, encoding="utf-8")
    print(plan)

    bare_seconds, bare_moved = time_bare_update(update_url, as_of)
    print(f"bare UPDATE: {bare_moved:,} plans in {bare_seconds:.1f} s")

    requests = typical_requests(dataset.users)
    flow_seconds, report, before, during = run_flow_under_load(
        flow_url, requests, rate, args.batch_size
    )
    print(f"expire-plans flow: {report['moved']:,} plans in {flow_seconds:.1f} s: {report}")
    for result in before:
        print(f"  before the flow: {result.summary()}")
    for result in during:
        print(f"  during the flow: {result.summary()}")
    if report["moved"] != bare_moved:
        print(f"WARNING: the flow moved {report['moved']:,}, the bare UPDATE {bare_moved:,}")

    worst_during, worst_before = worst(during), worst(before)
    figures = [
        Figure(
            f"expire-plans, {report['moved']:,} plans due",
            flow_seconds,
            "s",
            peer="one bare UPDATE",
            ratio=flow_seconds / bare_seconds,
        ),
        Figure("bare UPDATE of the same plans", bare_seconds, "s"),
        Figure("expire-plans rate", report["moved"] / flow_seconds, "plans/s"),
        Figure(f"API p99 at {rate:,.0f} req/s before the flow", worst_before.p99_ms, "ms"),
        Figure(
            f"API p99 at {rate:,.0f} req/s during the flow (worst {SLICE_S} s slice)",
            worst_during.p99_ms,
            "ms",
            target=f"< {API_P99_TARGET_MS} ms",
            met=worst_during.p99_ms < API_P99_TARGET_MS
            and all(r.requests > 0 and r.errors == 0 and r.non_2xx == 0 for r in during),
        ),
    ]
    notes = (
        f"copies of {template}; {made_due:,} plans due, every {every}th plan by id; "
        f"batch size {args.batch_size or 'the flow default'}; API: wallet serve, typical "
        f"requests, {CONNECTIONS} connections, wrk in {SLICE_S} s slices paced by delay() "
        "(coordinated omission not corrected)"
    )
    save("bench_expire", command, figures, notes)


if __name__ == "__main__":
    main()
