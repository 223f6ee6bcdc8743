"""`wallet migrate-vip` killed with SIGKILL at random moments, then run again to the end.

Each trial starts the real command on a generated legacy export, kills it (and its process
group) at a random moment while it writes batches, checks that what it
left is whole batches, a prefix of the legacy ids, then runs the command again: the plan
records and the quarantine must then hold exactly the rows a clean run writes, compared by
legacy id and every business column (surrogate ids and quarantine times may differ). Trials
go on until the kill landed half way `kills` times: once per backend in `make test`, ten times
in `make soak`.
"""

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from pipelines import vip_migration
from pipelines.demo_data import write_demo_export
from pipelines.importers import import_legacy
from tests.support import WALLET, new_database_url, run_wallet
from wallet.db import make_engine
from wallet.schema import upgrade
from wallet.tables import item_record, legacy_user_vip, migration_quarantine

PLAN_COLUMNS = [column for column in item_record.c if column.name != "id"]
QUARANTINE_COLUMNS = [migration_quarantine.c.legacy_id, migration_quarantine.c.reason]


def migrated_rows(engine) -> tuple[dict, dict]:
    """(plan records by legacy id, quarantine reasons by legacy id), without surrogate ids."""
    with engine.connect() as connection:
        plans = {
            row.legacy_id: dict(row._mapping) for row in connection.execute(select(*PLAN_COLUMNS))
        }
        held = {
            row.legacy_id: (row.reason, row.detail)
            for row in connection.execute(select(migration_quarantine))
        }
    return plans, held


def clean_run(
    request, backend: str, export: Path, directory: Path, batch_size: int
) -> tuple[dict, dict]:
    """What one uninterrupted migration of `export` writes, on a database of its own."""
    directory.mkdir()
    engine = make_engine(new_database_url(request, backend, directory))
    try:
        upgrade(engine)
        import_legacy(engine, export)
        _, after = vip_migration.migrate_batch(engine, None, batch_size)
        while after is not None:
            _, after = vip_migration.migrate_batch(engine, after, batch_size)
        return migrated_rows(engine)
    finally:
        engine.dispose()


def legacy_ids(engine) -> list[int]:
    with engine.connect() as connection:
        return (
            connection.execute(select(legacy_user_vip.c.id).order_by(legacy_user_vip.c.id))
            .scalars()
            .all()
        )


def start_migration(env: dict, log: Path, batch_size: int = 100) -> subprocess.Popen:
    with log.open("a") as output:
        return subprocess.Popen(
            [WALLET, "migrate-vip", "--batch-size", str(batch_size)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_while_writing(run: subprocess.Popen, engine, delay: float) -> bool:
    """SIGKILL the command and its group `delay` seconds after its first batch landed.

    Returns False if it ended first. Start-up time varies with the machine's load, so the
    moment is counted from the first batch, not from the start.
    """
    while not rows_done(engine):
        if run.poll() is not None:
            return False
        time.sleep(0.005)
    try:
        run.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        return True


def check_whole_batches(engine, ids: list[int], trial: str, batch_size: int) -> int:
    """What a killed run left is the first k legacy ids, k a whole number of batches."""
    plans, held = migrated_rows(engine)
    done = sorted(set(plans) | set(held))
    assert not set(plans) & set(held), f"{trial}: a legacy id both migrated and quarantined"
    assert done == ids[: len(done)], f"{trial}: the rows done are not a prefix of the legacy ids"
    assert len(done) % batch_size == 0 or len(done) == len(ids), f"{trial}: half a batch"
    return len(done)


def rows_done(engine) -> int:
    with engine.connect() as connection:
        plans = connection.execute(select(func.count()).select_from(item_record)).scalar_one()
        held = connection.execute(
            select(func.count()).select_from(migration_quarantine)
        ).scalar_one()
    return plans + held


def writing_window(engine, env: dict, log: Path, batch_size: int) -> tuple[float, float]:
    """Seconds from the command's start to its first and its last batch, in one whole run.

    The command spends most of its time starting up and reporting; the kills are aimed at the
    writing.
    """
    started = time.monotonic()
    run = start_migration(env, log, batch_size)
    first = last = None
    seen = 0
    while run.poll() is None:
        done = rows_done(engine)
        if done != seen:
            seen, last = done, time.monotonic() - started
            first = first if first is not None else last
        time.sleep(0.005)
    assert run.returncode == 0, log.read_text()[-3000:]
    assert first is not None, "the run wrote everything between two looks; give it more rows"
    return first, last


def kill_trials(
    request, engine, cli_env, tmp_path, *, users: int, batch_size: int, kills: int, seed: int
) -> list[str]:
    """Kill the command half way through `kills` times; one line per trial, for the log."""
    export = tmp_path / "export"
    write_demo_export(export, users=users, seed=seed)
    import_legacy(engine, export)
    ids = legacy_ids(engine)
    backend = request.node.callspec.params["database_url"]
    expected = clean_run(request, backend, export, tmp_path / "clean", batch_size)
    first, last = writing_window(engine, cli_env, tmp_path / "clean-run.log", batch_size)
    assert migrated_rows(engine) == expected

    rng = random.Random(seed)
    outcomes: list[str] = []
    while sum("half way" in outcome for outcome in outcomes) < kills:
        assert len(outcomes) < kills + 10, "the kills kept missing the run:\n" + "\n".join(outcomes)
        with engine.begin() as connection:
            connection.execute(delete(item_record))
            connection.execute(delete(migration_quarantine))
        # Anywhere from the first batch to the last one of a whole run.
        delay = rng.uniform(0, last - first)
        trial = (
            f"{backend} trial {len(outcomes) + 1} (seed {seed}, kill {delay:.2f}s after the "
            f"first batch; a whole run writes for {last - first:.2f}s)"
        )
        log = tmp_path / f"run-{len(outcomes) + 1}.log"
        killed = kill_while_writing(start_migration(cli_env, log, batch_size), engine, delay)
        done = check_whole_batches(engine, ids, trial, batch_size)
        migrated_before = len(migrated_rows(engine)[0])

        again = run_wallet(cli_env, "migrate-vip", "--batch-size", str(batch_size))

        assert again.returncode == 0, f"{trial}: {again.stderr[-2000:]}"
        assert f"already migrated          {migrated_before:>9,}" in again.stdout, trial
        plans, held = migrated_rows(engine)
        assert plans == expected[0], trial
        assert held == expected[1], trial
        when = "half way" if killed and 0 < done < len(ids) else "outside the writing"
        outcomes.append(f"{trial}: killed {when}, {done} of {len(ids)} rows done")
    return outcomes


@pytest.mark.timeout(300)
def test_migration_killed_at_random_moments_ends_with_the_rows_of_a_clean_run(
    request, engine, cli_env, tmp_path
):
    outcomes = kill_trials(
        request,
        engine,
        cli_env,
        tmp_path,
        users=2_000,
        batch_size=100,
        kills=1,
        seed=random.randrange(1000),
    )
    print("\n".join(outcomes))


@pytest.mark.soak
@pytest.mark.timeout(1_200)
def test_migration_killed_ten_times_ends_with_the_rows_of_a_clean_run(
    request, engine, cli_env, tmp_path
):
    outcomes = kill_trials(
        request,
        engine,
        cli_env,
        tmp_path,
        users=6_000,
        batch_size=50,
        kills=10,
        seed=random.randrange(1000),
    )
    print("\n".join(outcomes))
