"""The VIP migration of a million legacy rows: its speed, its memory, and two peers.

On copies of the benchmark dataset (PostgreSQL `create database … template …`, SQLite a copy
of the file), each run starting from the same unmigrated rows:

1. the migrate-vip flow over every legacy row on PostgreSQL, then over the first tenth of them,
   each in a process of its own: rows per second, and the peak memory (RSS) of the process;
2. the floor: one hand-written `INSERT … SELECT` writing the same plan records and quarantine
   rows (checked: both row sets are compared, all but surrogate ids and quarantine times);
3. the old way: a row-by-row ORM loop (read a VIP row, build an ORM object, add, commit) over
   the first 50,000 rows, compared with the flow's rows for the same legacy ids;
4. the flow on SQLite (its dataset is a tenth of the PostgreSQL one).

The flow's figure is the flow call's own time in a process where everything is imported and
a Prefect server (a test harness started first, shared by the runs) is already up.

    .venv/bin/python -m bench.bench_migration [--scale S] [--sqlite-scale S] [--seed N]
        [--batch-size N] [--orm-rows N]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session

from bench.common import Figure, postgres_admin_url, save
from bench.datagen import DEFAULT_SCALE, DEFAULT_SEED, SQLITE_DIR, Dataset, ensure_dataset
from pipelines import vip_migration
from wallet.db import make_engine
from wallet.tables import item_record, legacy_user_vip, migration_quarantine

SCRATCH_DATABASE = "wallet_bench_migration"
SCRATCH_SQLITE = SQLITE_DIR / "wallet_bench_migration.db"
ORM_ROWS = 50_000
FLOOR_RATIO_TARGET = 2.0
MEMORY_GROWTH_TARGET = 1.2

# The migration's rules in one statement: quarantine reasons in their order, duplicates as
# later twins of the lowest row that passes, the status mapping, Shanghai wall clock to UTC,
# prices rounded half up (PostgreSQL rounds numeric half away from zero, as Python's
# ROUND_HALF_UP does), and the same quarantine details as the Python rules write.
FLOOR_SQL = r"""
with legacy as (
    select
        vip.*,
        lower(btrim(coalesce(vip.status, ''), E' \t\n\r\f\v')) as legacy_status,
        plan.name as plan_name,
        plan.id is not null as is_known_role,
        case
            when btrim(coalesce(vip.total_price, ''), E' \t\n\r\f\v') <> ''
                then round(btrim(vip.total_price, E' \t\n\r\f\v')::numeric, 2)
            else plan.list_price
        end as price
    from legacy_user_vip as vip
    left join plan on plan.id = vip.vip_role_id
),

checked as (
    select
        *,
        case
            when user_id is null then 'missing_user'
            when not is_known_role then 'unknown_role'
            when legacy_status not in (
                'applying', 'success', 'refunding', 'refunded', 'canceled', 'cancelled',
                'closed', 'expired', ''
            ) then 'unknown_status'
            when expire_time < active_time then 'expire_before_active'
            when price < 0 then 'negative_price'
        end as reason
    from legacy
),

passed as (
    select
        *,
        min(id) over (partition by user_id, vip_role_id, create_time) as first_twin
    from checked
    where reason is null
),

quarantined as (
    insert into migration_quarantine (legacy_id, reason, detail, quarantined_at)
    select
        id,
        reason,
        case reason
            when 'missing_user' then 'user_id is empty'
            when 'unknown_role' then 'vip_role_id ' || coalesce(vip_role_id::text, 'None')
                || ' is not in the plan catalogue'
            when 'unknown_status' then 'status ''' || status || ''' is not a legacy status'
            when 'expire_before_active' then 'expire_time ' || expire_time::text
                || ' is before active_time ' || active_time::text
            when 'negative_price' then 'price ' || price::text || ' is negative'
        end,
        now()
    from checked
    where reason is not null
    union all
    select
        id,
        'duplicate',
        'same user, role and create_time as legacy id ' || first_twin,
        now()
    from passed
    where id <> first_twin
)

insert into item_record (
    legacy_id, user_id, plan_id, service_desc, price, status,
    create_time, active_time, expire_time, order_id
)
select
    id,
    user_id,
    vip_role_id,
    btrim(plan_name, E' \t'),
    price,
    case legacy_status
        when 'refunding' then 'refund'
        when 'cancelled' then 'canceled'
        when '' then case when active_time is null then 'applying' else 'success' end
        else legacy_status
    end,
    create_time at time zone 'Asia/Shanghai',
    active_time at time zone 'Asia/Shanghai',
    expire_time at time zone 'Asia/Shanghai',
    nullif(btrim(order_no, E' \t\n\r\f\v'), '')
from passed
where id = first_twin
"""

# What a run wrote, as (rows, order-independent sum of row hashes), up to a legacy id.
PLAN_RECORDS_WRITTEN = """
select
    count(*),
    coalesce(sum(('x' || left(md5(row(
        legacy_id, user_id, plan_id, service_desc, price, status,
        create_time, active_time, expire_time, order_id
    )::text), 15))::bit(60)::bigint), 0)
from item_record
where legacy_id is not null and legacy_id <= :last_id
"""
QUARANTINE_WRITTEN = """
select
    count(*),
    coalesce(sum(('x' || left(md5(row(legacy_id, reason, detail)::text), 15))::bit(60)::bigint), 0)
from migration_quarantine
where legacy_id <= :last_id
"""


# --- the old way: one ORM object and one commit per legacy row ---------------------------------


class Base(DeclarativeBase):
    pass


class LegacyVip(Base):
    __table__ = legacy_user_vip


class PlanRecord(Base):
    __table__ = item_record


class QuarantinedRow(Base):
    __table__ = migration_quarantine


def migrate_row_by_row(engine: Engine, rows: int) -> int:
    """The old script's loop over the first `rows` legacy rows, with the same rules."""
    with Session(engine) as reading, Session(engine) as writing:
        roles = vip_migration.load_roles(writing.connection())
        writing.commit()
        vips = reading.scalars(
            select(LegacyVip).order_by(LegacyVip.id).limit(rows).execution_options(yield_per=500)
        )
        done = 0
        for vip in vips:
            row = {column.name: getattr(vip, column.name) for column in legacy_user_vip.c}
            reason = vip_migration.first_reason(row, roles)
            if reason is None:
                twin = writing.scalar(
                    select(PlanRecord.legacy_id)
                    .where(
                        PlanRecord.user_id == row["user_id"],
                        PlanRecord.plan_id == row["vip_role_id"],
                        PlanRecord.create_time == vip_migration.to_utc(row["create_time"]),
                        PlanRecord.legacy_id.is_not(None),
                    )
                    .limit(1)
                )
                if twin is not None:
                    reason = "duplicate", f"same user, role and create_time as legacy id {twin}"
            if reason is None:
                writing.add(PlanRecord(**vip_migration.plan_record(row, roles)))
            else:
                writing.add(
                    QuarantinedRow(
                        legacy_id=row["id"],
                        reason=reason[0],
                        detail=reason[1],
                        quarantined_at=datetime.now(UTC),
                    )
                )
            writing.commit()
            done += 1
        return done


# --- scratch copies of the dataset ---------------------------------------------------------------


def fresh_postgres_copy(dataset: Dataset, wait_seconds: float = 600) -> str:
    """A new copy of the dataset's database; waits while other sessions use the dataset."""
    template = make_url(dataset.url).database
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    give_up = time.monotonic() + wait_seconds
    try:
        with admin.connect() as connection:
            connection.execute(text(f'drop database if exists "{SCRATCH_DATABASE}"'))
            while True:
                try:
                    connection.execute(
                        text(
                            f'create database "{SCRATCH_DATABASE}" template "{template}" '
                            "strategy file_copy"
                        )
                    )
                    break
                except OperationalError as error:
                    # Another benchmark connected to the dataset: it copies it too, briefly.
                    if "other users" not in str(error.orig) or time.monotonic() > give_up:
                        raise SystemExit(
                            f"cannot copy {template}: {error.orig}(close the sessions on it, "
                            "e.g. a server or another benchmark using the dataset, and run "
                            "again)"
                        ) from None
                    print(f"waiting for the sessions on {template} to end")
                    time.sleep(10)
    finally:
        admin.dispose()
    return make_url(dataset.url).set(database=SCRATCH_DATABASE).render_as_string(False)


def drop_postgres_copy() -> None:
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'drop database if exists "{SCRATCH_DATABASE}"'))
    admin.dispose()


def fresh_sqlite_copy(dataset: Dataset) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{SCRATCH_SQLITE}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(make_url(dataset.url).database, SCRATCH_SQLITE)
    return f"sqlite:///{SCRATCH_SQLITE}"


def keep_first_legacy_rows(url: str, rows: int) -> int:
    """Delete the legacy rows after the first `rows`; returns the last legacy id kept."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            last_id = connection.execute(
                select(legacy_user_vip.c.id).order_by(legacy_user_vip.c.id).offset(rows - 1)
            ).scalar()
            connection.execute(legacy_user_vip.delete().where(legacy_user_vip.c.id > last_id))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("vacuum analyze legacy_user_vip")
        return last_id
    finally:
        engine.dispose()


def written(url: str, last_id: int) -> tuple:
    """What the migration wrote up to `last_id`: (plan records, quarantine), counted and hashed."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            plans = connection.execute(text(PLAN_RECORDS_WRITTEN), {"last_id": last_id}).one()
            held = connection.execute(text(QUARANTINE_WRITTEN), {"last_id": last_id}).one()
        return tuple(plans), tuple(held)
    finally:
        engine.dispose()


# --- timed runs ----------------------------------------------------------------------------------


@contextmanager
def prefect_server():
    """One Prefect test server for every run here; its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


def run_flow(url: str, api_url: str, batch_size: int) -> dict:
    """The migrate-vip flow over `url`, in a process of its own; what the process measured."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_")}
    env |= {"WALLET_DATABASE_URL": url, "PREFECT_API_URL": api_url}
    command = [sys.executable, "-m", "bench.bench_migration", "--flow-child", str(batch_size)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the migration process failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def flow_child(batch_size: int) -> None:
    """In the child: import everything, then time the flow call alone and report as JSON."""
    from pipelines.flows.migrate_vip import migrate_vip
    from wallet.db import get_engine

    get_engine().dispose()
    rss_before = _rss_mb()
    started = time.perf_counter()
    summary = migrate_vip(batch_size=batch_size)
    seconds = time.perf_counter() - started
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forking
    # parent, while VmHWM starts afresh with this program.
    peak = _proc_status_mb("VmHWM")
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": rss_before}
            | {"summary": summary}
        )
    )


def _rss_mb() -> float:
    return _proc_status_mb("VmRSS")


def _proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB."""
    status = Path("/proc/self/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":"))
    return int(kib) / 1024


def time_floor(url: str) -> float:
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text(FLOOR_SQL))
        return time.perf_counter() - started
    finally:
        engine.dispose()


def time_row_by_row(url: str, rows: int) -> tuple[float, int]:
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        done = migrate_row_by_row(engine, rows)
        return time.perf_counter() - started, done
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE["postgresql"])
    parser.add_argument("--sqlite-scale", type=float, default=DEFAULT_SCALE["sqlite"])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--batch-size", type=int, default=None, help="the flow's batch size")
    parser.add_argument("--orm-rows", type=int, default=ORM_ROWS)
    parser.add_argument("--flow-child", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.flow_child is not None:
        flow_child(options.flow_child)
        return
    command = "python -m bench.bench_migration " + " ".join(sys.argv[1:])

    from pipelines.flows.migrate_vip import DEFAULT_BATCH_SIZE

    batch_size = options.batch_size or DEFAULT_BATCH_SIZE
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="wallet-bench-prefect-"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    postgres = ensure_dataset("postgresql", scale=options.scale, seed=options.seed)
    sqlite = ensure_dataset("sqlite", scale=options.sqlite_scale, seed=options.seed)
    rows = postgres.legacy_rows
    tenth = rows // 10

    with prefect_server() as api_url:
        url = fresh_postgres_copy(postgres)
        full = run_flow(url, api_url, batch_size)
        last_id, orm_last_id = legacy_id_at(url, rows), legacy_id_at(url, options.orm_rows)
        flow_rows, flow_orm_rows = written(url, last_id), written(url, orm_last_id)
        print(f"flow, PostgreSQL, {rows:,} rows: {full['seconds']:.1f} s; {full['summary']}")

        url = fresh_postgres_copy(postgres)
        keep_first_legacy_rows(url, tenth)
        small = run_flow(url, api_url, batch_size)
        print(f"flow, PostgreSQL, {tenth:,} rows: {small['seconds']:.1f} s")

        url = fresh_postgres_copy(postgres)
        floor_seconds = time_floor(url)
        floor_same = written(url, last_id) == flow_rows
        print(f"INSERT … SELECT, {rows:,} rows: {floor_seconds:.1f} s, same rows: {floor_same}")

        url = fresh_postgres_copy(postgres)
        keep_first_legacy_rows(url, options.orm_rows)
        orm_seconds, orm_done = time_row_by_row(url, options.orm_rows)
        orm_same = written(url, orm_last_id) == flow_orm_rows
        print(f"row-by-row ORM, {orm_done:,} rows: {orm_seconds:.1f} s, same rows: {orm_same}")
        drop_postgres_copy()

        sqlite_url = fresh_sqlite_copy(sqlite)
        on_sqlite = run_flow(sqlite_url, api_url, batch_size)
        print(f"flow, SQLite, {sqlite.legacy_rows:,} rows: {on_sqlite['seconds']:.1f} s")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SCRATCH_SQLITE}{suffix}").unlink(missing_ok=True)

    if not (floor_same and orm_same):
        raise SystemExit("the peers wrote other rows than the flow: their figures do not compare")
    flow_rate = rows / full["seconds"]
    orm_rate = orm_done / orm_seconds
    growth = full["peak_rss_mb"] / small["peak_rss_mb"]
    figures = [
        Figure(
            f"migrate-vip flow, PostgreSQL, {rows:,} legacy rows",
            flow_rate,
            "rows/s",
            peer="of one INSERT … SELECT's time (the floor)",
            ratio=full["seconds"] / floor_seconds,
            target=f"≤ {FLOOR_RATIO_TARGET:g}x the floor",
            met=full["seconds"] / floor_seconds <= FLOOR_RATIO_TARGET,
        ),
        Figure(f"one INSERT … SELECT, same {rows:,} rows", rows / floor_seconds, "rows/s"),
        Figure(
            f"row-by-row ORM loop, {orm_done:,} legacy rows",
            orm_rate,
            "rows/s",
            peer="the flow's rows/s over these",
            ratio=flow_rate / orm_rate,
        ),
        Figure(
            f"migrate-vip flow, SQLite, {sqlite.legacy_rows:,} legacy rows",
            sqlite.legacy_rows / on_sqlite["seconds"],
            "rows/s",
        ),
        Figure(f"peak RSS of the migrating process, {tenth:,} rows", small["peak_rss_mb"], "MiB"),
        Figure(
            f"peak RSS of the migrating process, {rows:,} rows",
            full["peak_rss_mb"],
            "MiB",
            peer=f"of the {tenth:,}-row run",
            ratio=growth,
            target=f"≤ {MEMORY_GROWTH_TARGET:g}x",
            met=growth <= MEMORY_GROWTH_TARGET,
        ),
    ]
    notes = (
        f"PostgreSQL dataset scale {postgres.scale:g} seed {postgres.seed}, SQLite scale "
        f"{sqlite.scale:g}; batch size {batch_size}; each run on a fresh copy of the dataset. "
        "Flow figures time the flow call alone, in a process of its own with a Prefect test "
        "server already up (its start-up not counted); peak RSS is that process's maximum "
        f"resident set ({full['rss_before_mb']:.0f} MiB before the flow started). The "
        "INSERT … SELECT wrote the same plan records and quarantine rows as the flow, and the "
        "ORM loop the same as the flow for its legacy ids (compared, all but surrogate ids "
        "and quarantine times)."
    )
    save("bench_migration", command, figures, notes)


def legacy_id_at(url: str, position: int) -> int:
    """The legacy id at `position` (1-based) in legacy id order, or the last one."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            ids = select(legacy_user_vip.c.id).order_by(legacy_user_vip.c.id)
            at = connection.execute(ids.offset(position - 1).limit(1)).scalar()
            last = connection.execute(text("select max(id) from legacy_user_vip")).scalar_one()
        return last if at is None else at
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
