"""`wallet flows serve` against Prefect's test server: deployments, schedules, a run, restarts."""

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from sqlalchemy import insert, select

from tests.support import WALLET
from wallet.tables import item_record

DEPLOYMENTS = {
    "expire-plans/expire-plans": timedelta(minutes=5),
    "close-unpaid-orders/close-unpaid-orders": timedelta(minutes=5),
    "settle-refunds/settle-refunds": timedelta(minutes=15),
    "build-warehouse/build-warehouse": timedelta(minutes=30),
    "migrate-vip/migrate-vip": None,
}


def start_serving(env: dict, log: Path) -> subprocess.Popen:
    with log.open("a") as output:
        return subprocess.Popen(
            [WALLET, "flows", "serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_with_ctrl_c(serving: subprocess.Popen) -> int:
    os.killpg(serving.pid, signal.SIGINT)
    try:
        return serving.wait(timeout=60)
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)


def served_deployments(serving: subprocess.Popen, log: Path, since: datetime) -> dict:
    """The deployments, once the serve process has (re)registered them after `since`."""
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert serving.poll() is None, log.read_text()[-3000:]
            found = {}
            for name in DEPLOYMENTS:
                try:
                    found[name] = client.read_deployment_by_name(name)
                except Exception:
                    break
            if len(found) == len(DEPLOYMENTS) and all(
                not deployment.paused and deployment.updated >= since
                for deployment in found.values()
            ):
                return found
            time.sleep(0.5)
    pytest.fail("the deployments were not registered within two minutes")


@pytest.mark.timeout(420)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_registers_schedules_runs_a_deployment_and_survives_a_restart(
    engine, cli_env, tmp_path
):
    log = tmp_path / "serve.log"
    with engine.begin() as connection:
        connection.execute(
            insert(item_record),
            {
                "id": 1,
                "user_id": 1001,
                "service_desc": "标准版",
                "price": Decimal("1999.00"),
                "status": "success",
                "create_time": datetime(2025, 1, 1, tzinfo=UTC),
                "expire_time": datetime(2025, 4, 1, tzinfo=UTC),
            },
        )
    started = datetime.now(UTC) - timedelta(seconds=1)
    serving = start_serving(cli_env, log)
    try:
        deployments = served_deployments(serving, log, started)
        intervals = {
            name: (deployment.schedules[0].schedule.interval if deployment.schedules else None)
            for name, deployment in deployments.items()
        }
        assert intervals == DEPLOYMENTS

        flow_run = run_deployment("expire-plans/expire-plans", timeout=180)

        assert flow_run.state.is_completed(), flow_run.state
        with engine.connect() as connection:
            assert connection.execute(select(item_record.c.status)).scalar_one() == "expired"
    finally:
        assert stop_with_ctrl_c(serving) == 0

    restarted_at = datetime.now(UTC) - timedelta(seconds=1)
    serving = start_serving(cli_env, log)
    try:
        again = served_deployments(serving, log, restarted_at)
        # The same deployments and the same schedules: the server keeps the runs it planned on
        # the same clock slots, so a restart neither repeats a slot nor loses the next one.
        assert {name: d.id for name, d in again.items()} == {
            name: d.id for name, d in deployments.items()
        }
        assert {name: [s.id for s in d.schedules] for name, d in again.items()} == {
            name: [s.id for s in d.schedules] for name, d in deployments.items()
        }
    finally:
        assert stop_with_ctrl_c(serving) == 0
