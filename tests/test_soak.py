"""The soak (`make soak`): the API under a steady load on PostgreSQL while the flows run.

`wallet serve` (uvicorn, two workers) answers a paced wrk load on 127.0.0.1 for
WALLET_SOAK_SECONDS (default 600) while `wallet flows serve` runs the scheduled flows every
minute and new due rows keep arriving. Prefect's test server runs no scheduler service (it is
an ephemeral server), so the test asks for one run of each scheduled deployment every minute,
which the serve process then runs, as the scheduler would. At the end: no failed request,
memory held, every flow run completed, every row that came due was moved; the figures are
printed.
"""

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.deployments import run_deployment
from sqlalchemy import func, insert, select

from bench.load import run_wrk, serving, token_for
from pipelines.demo_data import FIRST_USER_ID, write_demo_export
from pipelines.flows.migrate_vip import migrate_vip
from pipelines.importers import import_legacy, import_orders
from tests.support import WALLET
from wallet.tables import item_record, payment_record, refund_settlement, transition_log

SOAK_SECONDS = int(os.environ.get("WALLET_SOAK_SECONDS", "600"))
REQUESTS_PER_SECOND = 40
CONNECTIONS = 4
# The server processes' resident memory may grow this much from warm-up to the end.
MEMORY_GROWTH = 1.30
SCHEDULED = ["expire-plans", "close-unpaid-orders", "settle-refunds", "build-warehouse"]
EVERY_MINUTE = {
    "WALLET_EXPIRE_PLANS_EVERY": "PT1M",
    "WALLET_CLOSE_UNPAID_ORDERS_EVERY": "PT1M",
    "WALLET_SETTLE_REFUNDS_EVERY": "PT1M",
    "WALLET_BUILD_WAREHOUSE_EVERY": "PT1M",
}


def server_processes(port: int) -> list[int]:
    """The pids of the uvicorn processes serving `port`: the parent and its group."""
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in command and str(port).encode() in command:
            groups.add(os.getpgid(int(entry.name)))
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) in groups:
                    members.append(int(entry.name))
            except OSError:
                continue
    return sorted(members)


def resident_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


class Arrivals:
    """New rows that come due within a minute, added every few seconds, as sales go on."""

    def __init__(self, engine):
        self.engine = engine
        self.number = 0
        self.errors: list[BaseException] = []

    def add(self) -> None:
        now = datetime.now(UTC)
        self.number += 1
        n = self.number
        with self.engine.begin() as connection:
            connection.execute(
                insert(payment_record),
                [
                    {
                        "order_id": f"SOAK-UNPAID-{n}",
                        "user_id": FIRST_USER_ID,
                        "record_type": 3,
                        "actual_price": Decimal("129.00"),
                        "order_status": "unpay",
                        "create_time": now - timedelta(minutes=29, seconds=30),
                        "pay_time": None,
                    },
                    {
                        "order_id": f"SOAK-REFUND-{n}",
                        "user_id": FIRST_USER_ID,
                        "record_type": 3,
                        "actual_price": Decimal("599.00"),
                        "order_status": "refund",
                        "create_time": now - timedelta(days=3),
                        "pay_time": now - timedelta(days=3),
                    },
                ],
            )
            # One statement for several rows: every row names the same columns.
            plan = {
                "user_id": FIRST_USER_ID,
                "service_desc": "月度会员",
                "price": Decimal("129.00"),
                "expire_time": None,
                "order_id": None,
            }
            connection.execute(
                insert(item_record),
                [
                    plan
                    | {
                        "status": "success",
                        "create_time": now - timedelta(days=30),
                        "expire_time": now + timedelta(seconds=20),
                    },
                    plan
                    | {"status": "applying", "create_time": now, "order_id": f"SOAK-UNPAID-{n}"},
                    plan | {"status": "refund", "create_time": now, "order_id": f"SOAK-REFUND-{n}"},
                ],
            )
            connection.execute(
                insert(refund_settlement),
                {
                    "order_id": f"SOAK-REFUND-{n}",
                    "refund_amount": Decimal("599.00"),
                    "settled_at": now,
                    "source_file": "soak.csv",
                    "source_line": n + 1,
                    "imported_at": now,
                },
            )

    def keep_adding(self, until: float) -> None:
        try:
            while time.monotonic() < until:
                self.add()
                time.sleep(5)
        except BaseException as error:
            self.errors.append(error)


def run_every_minute(until: float, flow_runs: list, errors: list, rounds: list) -> None:
    """One run of each scheduled deployment a minute, for the serve process to pick up."""
    try:
        while time.monotonic() < until:
            minute = time.monotonic()
            rounds.append(datetime.now(UTC))
            for name in SCHEDULED:
                flow_runs.append(run_deployment(f"{name}/{name}", timeout=0))
            time.sleep(max(0.0, 60 - (time.monotonic() - minute)))
    except BaseException as error:
        errors.append(error)


def flow_run_states(flow_runs: list) -> dict[str, int]:
    states: dict[str, int] = {}
    with get_client(sync_client=True) as client:
        for flow_run in flow_runs:
            state = client.read_flow_run(flow_run.id).state
            states[state.name] = states.get(state.name, 0) + 1
    return states


def wait_for_flow_runs(flow_runs: list, seconds: float) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while True:
        states = flow_run_states(flow_runs)
        finished = sum(
            count for name, count in states.items() if name in ("Completed", "Failed", "Crashed")
        )
        if finished == len(flow_runs) or time.monotonic() > deadline:
            return states
        time.sleep(2)


@pytest.mark.soak
@pytest.mark.timeout(SOAK_SECONDS + 900)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_api_soaks_under_load_while_the_flows_run_every_minute(
    flow_engine, cli_env, settings, tmp_path
):
    assert SOAK_SECONDS >= 240, "rows arrive until 150 s before the end; give at least 240 s"
    engine = flow_engine
    export = tmp_path / "export"
    write_demo_export(export, users=3_000)
    import_legacy(engine, export)
    import_orders(engine, export / "payment_record.csv")
    migrate_vip()
    users = range(FIRST_USER_ID, FIRST_USER_ID + 200)
    requests = []
    for number, user_id in enumerate(users):
        token = token_for(user_id)
        requests += [
            (f"/payment/service_list/?page={1 + number % 3}", token),
            (
                f"/payment/service_list/?status={('success', 'expired', 'refund')[number % 3]}",
                token,
            ),
            (f"/payment/payment_record/?record_type={1 + number % 4}&per_page=20", token),
        ]

    flows_env = (
        cli_env | EVERY_MINUTE | {"WALLET_WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb")}
    )
    flows_log = tmp_path / "flows-serve.log"
    with flows_log.open("w") as output:
        flows = subprocess.Popen(
            [WALLET, "flows", "serve"],
            env=flows_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    flow_runs: list = []
    rounds: list[datetime] = []
    errors: list[BaseException] = []
    arrivals = Arrivals(engine)
    try:
        wait_for_deployments(flows, flows_log)
        with serving(settings.database_url, workers=2) as base_url:
            port = int(base_url.rsplit(":", 1)[1])
            warm_up = run_wrk(base_url, requests, CONNECTIONS, 10, rate=REQUESTS_PER_SECOND)
            pids = server_processes(port)
            memory_start = resident_mb(pids)
            until = time.monotonic() + SOAK_SECONDS
            background = [
                threading.Thread(target=arrivals.keep_adding, args=(until - 150,)),
                threading.Thread(
                    target=run_every_minute, args=(until - 60, flow_runs, errors, rounds)
                ),
            ]
            for thread in background:
                thread.start()

            result = run_wrk(
                base_url, requests, CONNECTIONS, SOAK_SECONDS, rate=REQUESTS_PER_SECOND
            )

            memory_end = resident_mb(pids)
            for thread in background:
                thread.join(timeout=120)
        states = wait_for_flow_runs(flow_runs, 300)
    finally:
        os.killpg(flows.pid, signal.SIGINT)
        try:
            flows.wait(timeout=60)
        finally:
            if flows.poll() is None:
                os.killpg(flows.pid, signal.SIGKILL)

    with engine.connect() as connection:
        left_due = connection.execute(
            select(func.count())
            .select_from(item_record)
            .where(
                item_record.c.user_id == FIRST_USER_ID,
                item_record.c.status.in_(["applying", "refund"]),
                item_record.c.order_id.like("SOAK-%"),
            )
        ).scalar_one()
        left_unpaid = connection.execute(
            select(func.count()).where(
                payment_record.c.order_id.like("SOAK-UNPAID-%"),
                payment_record.c.order_status == "unpay",
            )
        ).scalar_one()
        left_expiring = connection.execute(
            select(func.count()).where(
                item_record.c.status.in_(["success", "cancel_refund"]),
                item_record.c.expire_time <= rounds[-1] - timedelta(seconds=5),
            )
        ).scalar_one()
        moved = connection.execute(
            select(func.count()).where(transition_log.c.entity_id.like("SOAK-%"))
        ).scalar_one()
        pending = connection.execute(
            select(func.count()).where(refund_settlement.c.status == "pending")
        ).scalar_one()
    print(
        f"\nsoak: {SOAK_SECONDS} s on PostgreSQL, {REQUESTS_PER_SECOND} req/s asked over "
        f"{CONNECTIONS} connections\n"
        f"  warm-up: {warm_up.summary()}\n"
        f"  load:    {result.summary()}\n"
        f"  requests {result.requests:,}, p99 {result.p99_ms:.1f} ms, errors {result.errors}, "
        f"non-2xx {result.non_2xx}\n"
        f"  server memory (RSS of {len(pids)} processes): start {memory_start:.1f} MB, "
        f"end {memory_end:.1f} MB (bound: x{MEMORY_GROWTH})\n"
        f"  flow runs asked: {len(flow_runs)}, states {states}; rows arrived: "
        f"{arrivals.number * 6}, left due: {left_due + left_expiring} plans, {left_unpaid} orders, "
        f"{pending} settlements; orders moved by the flows: {moved}"
    )
    assert errors == [] and arrivals.errors == []
    assert (result.errors, result.non_2xx, warm_up.errors, warm_up.non_2xx) == (0, 0, 0, 0)
    assert result.requests >= 0.9 * REQUESTS_PER_SECOND * SOAK_SECONDS
    assert memory_end <= MEMORY_GROWTH * memory_start
    assert states == {"Completed": len(flow_runs)}
    assert arrivals.number > 0 and moved >= 2 * arrivals.number
    assert (left_due, left_expiring, left_unpaid, pending) == (0, 0, 0, 0)


def wait_for_deployments(flows: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert flows.poll() is None, log.read_text()[-3000:]
            found = client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=SCHEDULED))
            )
            if len(found) == len(SCHEDULED):
                intervals = {d.name: d.schedules[0].schedule.interval for d in found}
                assert set(intervals.values()) == {timedelta(minutes=1)}
                return
            time.sleep(1)
    pytest.fail("`wallet flows serve` did not register its deployments within two minutes")
