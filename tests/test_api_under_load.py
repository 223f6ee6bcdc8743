"""On SQLite, `wallet serve` keeps answering while the flows write: the importers, the VIP
migration and the scheduled transitions move thousands of rows under a steady stream of
requests, and not one request fails (WAL, a busy timeout, short write transactions)."""

import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, insert, select

from pipelines import scheduled_moves, vip_migration
from pipelines.demo_data import write_demo_export
from pipelines.flows.transitions import DEFAULT_BATCH_SIZE
from pipelines.importers import import_legacy, import_orders
from tests.support import ServedApi, serve_environment, signed_in
from wallet.db import write_transaction
from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.tables import item_record, payment_record, transition_log

# The users whose rows fall due; the readers sign in as them, so they read the very rows that
# the transitions move.
DUE_USERS = range(1, 41)
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
UNPAID_TIMEOUT = timedelta(minutes=30)
ACTOR = "load-test"
# The flows' own batch size: the longest write transactions they run.
BATCH = DEFAULT_BATCH_SIZE


@dataclass
class Workload:
    due_plans: int
    due_orders: int
    demo_users: int
    readers: int
    # New due rows keep coming and moving until this long has passed.
    min_seconds: float


@dataclass
class Answers:
    """What the readers got: every status code, the bodies of the failures, and timings."""

    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def p99(self) -> float:
        return statistics.quantiles(self.seconds, n=100)[98] if len(self.seconds) > 1 else 0.0


def add_due_rows(engine, workload: Workload, round_number: int) -> None:
    """Plans in success past their expire_time, and orders unpay long past the timeout."""
    plans = [
        {
            "user_id": DUE_USERS[n % len(DUE_USERS)],
            "service_desc": "标准版",
            "price": Decimal("999.00"),
            "status": PlanStatus.SUCCESS.value,
            "create_time": LONG_AGO,
            "active_time": LONG_AGO,
            "expire_time": LONG_AGO + timedelta(days=30, seconds=n),
            "order_id": None,
        }
        for n in range(workload.due_plans)
    ]
    orders = [
        {
            "order_id": f"PB-LOAD-{round_number}-{n:07}",
            "user_id": DUE_USERS[n % len(DUE_USERS)],
            "record_type": RecordType.RECHARGE.value,
            "actual_price": Decimal("50.00"),
            "order_status": OrderStatus.UNPAY.value,
            "create_time": LONG_AGO + timedelta(seconds=n),
            "pay_time": None,
        }
        for n in range(workload.due_orders)
    ]
    with write_transaction(engine) as connection:
        connection.execute(insert(item_record), plans)
        connection.execute(insert(payment_record), orders)


def read_steadily(api_url: str, settings, answers: Answers, stop: threading.Event, seed: int):
    """One reader: the two lists of a random due user, with random filters, back to back."""
    rng = random.Random(seed)
    with httpx.Client(base_url=api_url, timeout=30) as client:
        while not stop.is_set():
            user_id = rng.choice(DUE_USERS)
            if rng.random() < 0.5:
                url = "/payment/service_list/"
                params = {"status": rng.choice([None, "success", "expired"])}
            else:
                url = "/payment/payment_record/"
                params = {"order_status": rng.choice([None, "unpay", "closed"])}
            params["page"] = rng.randint(1, 5)
            started = time.perf_counter()
            response = client.get(url, params=params, headers=signed_in(user_id, settings))
            elapsed = time.perf_counter() - started
            with answers.lock:
                answers.statuses.append(response.status_code)
                answers.seconds.append(elapsed)
                if response.status_code != 200:
                    answers.failures.append(f"{response.status_code} {url} {response.text}")


def write_like_the_flows(engine, export_dir, workload: Workload) -> dict[str, int]:
    """What the flows write, in their own batches: the imports and the migration, then rounds
    of new due rows moved by the transitions until `workload.min_seconds` have passed."""
    started = time.monotonic()
    done = {"rounds": 0, "expired": 0, "closed": 0}
    import_legacy(engine, export_dir)
    import_orders(engine, export_dir / "payment_record.csv")

    migration = vip_migration.MigrationReport()
    after = None
    while True:
        report, after = vip_migration.migrate_batch(engine, after, 1_000)
        if after is None:
            break
        migration.add(report)
    done["migrated"] = migration.migrated

    while done["rounds"] == 0 or time.monotonic() - started < workload.min_seconds:
        add_due_rows(engine, workload, done["rounds"])
        now = datetime.now(UTC)
        while moved := scheduled_moves.expire_plans_batch(engine, now, BATCH, ACTOR).total:
            done["expired"] += moved
        while moved := scheduled_moves.close_unpaid_orders_batch(
            engine, now, UNPAID_TIMEOUT, BATCH, ACTOR
        ).total:
            done["closed"] += moved
        done["rounds"] += 1
    return done


def serve_under_load(engine, settings, tmp_path, workload: Workload) -> tuple[Answers, dict]:
    export_dir = tmp_path / "export"
    write_demo_export(export_dir, users=workload.demo_users, seed=7)
    # The API only reads, and in WAL mode a reader never waits for a writer: served with no busy
    # timeout at all, any wait on a lock fails a request here instead of only slowing it down.
    env = serve_environment(
        settings.database_url, tmp_path / "var", WALLET_SQLITE_BUSY_TIMEOUT_MS="0"
    )
    answers, stop = Answers(), threading.Event()

    with ServedApi(env, tmp_path / "serve.log") as api:
        readers = [
            threading.Thread(target=read_steadily, args=(api.url, settings, answers, stop, seed))
            for seed in range(workload.readers)
        ]
        for reader in readers:
            reader.start()
        started = time.monotonic()
        try:
            done = write_like_the_flows(engine, export_dir, workload)
        finally:
            stop.set()
            for reader in readers:
                reader.join()
        done["seconds"] = round(time.monotonic() - started, 1)
    return answers, done


def moved_and_logged(engine) -> tuple[int, int, int]:
    """Expired plans and closed orders of the due users, and the moves logged by this test."""
    due_users = list(DUE_USERS)
    with engine.connect() as connection:
        expired = connection.scalar(
            select(func.count()).where(
                item_record.c.user_id.in_(due_users),
                item_record.c.status == PlanStatus.EXPIRED.value,
            )
        )
        closed = connection.scalar(
            select(func.count()).where(
                payment_record.c.user_id.in_(due_users),
                payment_record.c.order_status == OrderStatus.CLOSED.value,
            )
        )
        logged = connection.scalar(
            select(func.count()).select_from(transition_log).where(transition_log.c.actor == ACTOR)
        )
    return expired, closed, logged


def check_nothing_failed(engine, answers: Answers, done: dict, workload: Workload) -> None:
    print(
        f"\n{len(answers.statuses)} requests in {done['seconds']} s while the flows wrote, "
        f"{len(answers.failures)} failed, p99 {answers.p99() * 1000:.0f} ms; wrote {done}"
    )
    assert answers.failures == []
    assert set(answers.statuses) == {200}
    assert len(answers.statuses) >= 100
    assert done["migrated"] > 0
    # Every due row moved, once, with its log row (the demo data brings due rows of its own).
    due_plans = workload.due_plans * done["rounds"]
    due_orders = workload.due_orders * done["rounds"]
    assert moved_and_logged(engine) == (due_plans, due_orders, done["expired"] + done["closed"])
    assert done["expired"] >= due_plans
    assert done["closed"] >= due_orders


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wallet_serve_on_sqlite_answers_every_request_while_the_flows_write(
    engine, settings, tmp_path
):
    workload = Workload(
        due_plans=12_000, due_orders=12_000, demo_users=1_000, readers=3, min_seconds=4
    )

    answers, done = serve_under_load(engine, settings, tmp_path, workload)

    check_nothing_failed(engine, answers, done, workload)


@pytest.mark.soak
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wallet_serve_on_sqlite_answers_every_request_while_the_flows_write_a_lot(
    engine, settings, tmp_path
):
    workload = Workload(
        due_plans=30_000, due_orders=30_000, demo_users=5_000, readers=4, min_seconds=120
    )

    answers, done = serve_under_load(engine, settings, tmp_path, workload)

    check_nothing_failed(engine, answers, done, workload)
