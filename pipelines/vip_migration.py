"""Moving legacy VIP memberships into plan records: the rules, one batch at a time.

A batch is a run of legacy rows in legacy id order. Each is either migrated (a plan record
with `legacy_id` set), quarantined (a `migration_quarantine` row with the first reason that
applies), or left alone because an earlier run already did one of those. A batch is written
in one transaction, so a run killed half way leaves whole batches only, and the next run
picks up the rest.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    cast,
    delete,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import aliased

from wallet.db import insert_or_skip, write_transaction
from wallet.statuses import PlanStatus
from wallet.tables import (
    item_record,
    legacy_user_vip,
    migration_quarantine,
    plan,
    transition_log,
)

log = logging.getLogger(__name__)

# The old system wrote naive wall-clock times of its servers in Shanghai.
LEGACY_TIMEZONE = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")

# Legacy status text (trimmed, lower-cased) -> plan status; "" is decided by active_time.
LEGACY_STATUSES = {
    "applying": PlanStatus.APPLYING,
    "success": PlanStatus.SUCCESS,
    "refunding": PlanStatus.REFUND,
    "refunded": PlanStatus.REFUNDED,
    "canceled": PlanStatus.CANCELED,
    "cancelled": PlanStatus.CANCELED,
    "closed": PlanStatus.CLOSED,
    "expired": PlanStatus.EXPIRED,
    "": None,
}

# Quarantine reasons, in the order they are checked; a row gets the first that applies.
QUARANTINE_REASONS = (
    "missing_user",
    "unknown_role",
    "unknown_status",
    "expire_before_active",
    "negative_price",
    "duplicate",
)


@dataclass(frozen=True)
class Role:
    name: str
    list_price: Decimal


@dataclass
class MigrationReport:
    """What a run did; `dry_run` reports what it would have done."""

    dry_run: bool = False
    retry_quarantined: bool = False
    rows_read: int = 0
    migrated: int = 0
    already_migrated: int = 0
    released_from_quarantine: int = 0
    quarantined_new: Counter = field(default_factory=Counter)
    quarantined_total: Counter = field(default_factory=Counter)

    @property
    def migrated_total(self) -> int:
        return self.already_migrated + self.migrated

    def add(self, other: "MigrationReport") -> None:
        self.rows_read += other.rows_read
        self.migrated += other.migrated
        self.already_migrated += other.already_migrated
        self.released_from_quarantine += other.released_from_quarantine
        self.quarantined_new.update(other.quarantined_new)
        self.quarantined_total.update(other.quarantined_total)

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "retry_quarantined": self.retry_quarantined,
            "rows_read": self.rows_read,
            "migrated": self.migrated,
            "already_migrated": self.already_migrated,
            "migrated_total": self.migrated_total,
            "released_from_quarantine": self.released_from_quarantine,
            "quarantined_new": sum(self.quarantined_new.values()),
            "quarantined_total": sum(self.quarantined_total.values()),
            "quarantined_by_reason": {
                reason: {
                    "new": self.quarantined_new[reason],
                    "total": self.quarantined_total[reason],
                }
                for reason in QUARANTINE_REASONS
            },
        }

    def to_markdown(self) -> str:
        title = "VIP migration (dry run: nothing written)" if self.dry_run else "VIP migration"
        lines = [
            f"# {title}",
            "",
            "| | rows |",
            "| --- | ---: |",
            f"| legacy rows read | {self.rows_read} |",
            f"| migrated by this run | {self.migrated} |",
            f"| already migrated | {self.already_migrated} |",
            f"| plan records from the migration | {self.migrated_total} |",
        ]
        if self.retry_quarantined:
            lines.append(f"| released from quarantine | {self.released_from_quarantine} |")
        lines += [
            f"| quarantined by this run | {sum(self.quarantined_new.values())} |",
            f"| in quarantine | {sum(self.quarantined_total.values())} |",
            "",
            "| quarantine reason | new | total |",
            "| --- | ---: | ---: |",
        ]
        lines += [
            f"| {reason} | {self.quarantined_new[reason]} | {self.quarantined_total[reason]} |"
            for reason in QUARANTINE_REASONS
        ]
        return "\n".join(lines) + "\n"


@dataclass
class RollbackReport:
    removed: int = 0
    kept_changed: list[int] = field(default_factory=list)
    quarantine_cleared: int = 0

    def as_dict(self) -> dict:
        return {
            "removed": self.removed,
            "kept_changed": len(self.kept_changed),
            "kept_changed_legacy_ids": self.kept_changed[:100],
            "quarantine_cleared": self.quarantine_cleared,
        }


# --- the rules, pure -------------------------------------------------------------------------


def to_utc(local: datetime | None) -> datetime | None:
    """A naive legacy time (Shanghai wall clock) as an aware UTC instant."""
    if local is None:
        return None
    return local.replace(tzinfo=LEGACY_TIMEZONE).astimezone(UTC)


def round_price(text: str) -> Decimal:
    """A price parsed from its text, rounded half-up to cents ('0.005' -> 0.01)."""
    return Decimal(text.strip()).quantize(CENT, rounding=ROUND_HALF_UP)


def effective_price(row: dict, roles: dict[int, Role]) -> Decimal:
    total_price = (row["total_price"] or "").strip()
    if total_price:
        return round_price(total_price)
    return roles[row["vip_role_id"]].list_price


def normalize_status(raw: str | None) -> str:
    return (raw or "").strip().lower()


def first_reason(row: dict, roles: dict[int, Role]) -> tuple[str, str] | None:
    """The first quarantine reason before `duplicate` that applies, with a detail, or None."""
    if row["user_id"] is None:
        return "missing_user", "user_id is empty"
    if row["vip_role_id"] not in roles:
        return "unknown_role", f"vip_role_id {row['vip_role_id']} is not in the plan catalogue"
    status = normalize_status(row["status"])
    if status not in LEGACY_STATUSES:
        return "unknown_status", f"status {row['status']!r} is not a legacy status"
    active, expire = row["active_time"], row["expire_time"]
    if active is not None and expire is not None and expire < active:
        return "expire_before_active", f"expire_time {expire} is before active_time {active}"
    price = effective_price(row, roles)
    if price < 0:
        return "negative_price", f"price {price} is negative"
    return None


def plan_status(row: dict) -> PlanStatus:
    status = LEGACY_STATUSES[normalize_status(row["status"])]
    if status is not None:
        return status
    return PlanStatus.SUCCESS if row["active_time"] is not None else PlanStatus.APPLYING


def plan_record(row: dict, roles: dict[int, Role]) -> dict:
    """The plan record a legacy row that passed every check becomes."""
    role = roles[row["vip_role_id"]]
    return {
        "legacy_id": row["id"],
        "user_id": row["user_id"],
        "plan_id": row["vip_role_id"],
        "service_desc": role.name.strip(" \t"),
        "price": effective_price(row, roles),
        "status": plan_status(row).value,
        "create_time": to_utc(row["create_time"]),
        "active_time": to_utc(row["active_time"]),
        "expire_time": to_utc(row["expire_time"]),
        "order_id": (row["order_no"] or "").strip() or None,
    }


def duplicate_key(row: dict) -> tuple:
    return row["user_id"], row["vip_role_id"], row["create_time"]


# --- reading and writing batches ---------------------------------------------------------------

LEGACY_COLUMNS = [c for c in legacy_user_vip.c]


def load_roles(connection: Connection) -> dict[int, Role]:
    rows = connection.execute(select(plan.c.id, plan.c.name, plan.c.list_price))
    return {row.id: Role(row.name, row.list_price) for row in rows}


def count_legacy_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(legacy_user_vip)).scalar_one()


def _read_batch(connection: Connection, after: int | None, size: int) -> list[dict]:
    legacy_id = legacy_user_vip.c.id
    # Each join is bounded below too: without it PostgreSQL merges from the first migrated
    # legacy id on every batch, and a run slows down with every batch it has done.
    plan_record_joined = item_record.c.legacy_id == legacy_id
    quarantine_joined = migration_quarantine.c.legacy_id == legacy_id
    if after is not None:
        plan_record_joined &= item_record.c.legacy_id > after
        quarantine_joined &= migration_quarantine.c.legacy_id > after
    query = (
        select(
            *LEGACY_COLUMNS,
            item_record.c.id.label("plan_record_id"),
            migration_quarantine.c.reason.label("quarantine_reason"),
        )
        .outerjoin(item_record, plan_record_joined)
        .outerjoin(migration_quarantine, quarantine_joined)
        .order_by(legacy_id)
        .limit(size)
    )
    if after is not None:
        query = query.where(legacy_id > after)
    return _as_dicts(connection.execute(query))


def _as_dicts(result) -> list[dict]:
    names = list(result.keys())
    return [dict(zip(names, row, strict=True)) for row in result]


def _read_earlier_twins(connection: Connection, first_id: int, last_id: int) -> list[dict]:
    """Legacy rows before this batch with the same user, role and create_time as a batch row."""
    batch_row = aliased(legacy_user_vip)
    query = (
        select(*LEGACY_COLUMNS)
        .distinct()
        .join(
            batch_row,
            and_(
                batch_row.c.user_id == legacy_user_vip.c.user_id,
                batch_row.c.vip_role_id == legacy_user_vip.c.vip_role_id,
                batch_row.c.create_time == legacy_user_vip.c.create_time,
            ),
        )
        .where(batch_row.c.id.between(first_id, last_id), legacy_user_vip.c.id < first_id)
    )
    return _as_dicts(connection.execute(query))


def _classify(batch: list[dict], twins: list[dict], roles) -> dict[int, tuple | None]:
    """For each batch row: None to migrate, or (reason, detail) to quarantine.

    A row is a duplicate when a lower legacy id with the same user, role and create_time passes
    every other check: the lowest such row always migrates, so this needs only the legacy table
    and comes out the same in a dry run, a resumed run or a run over the whole table at once.
    """
    reasons = {row["id"]: first_reason(row, roles) for row in twins + batch}
    first_seen: dict[tuple, int] = {}
    for row in sorted(twins + batch, key=lambda r: r["id"]):
        if reasons[row["id"]] is None:
            first_seen.setdefault(duplicate_key(row), row["id"])
    outcome = {}
    for row in batch:
        reason = reasons[row["id"]]
        if reason is None:
            twin = first_seen[duplicate_key(row)]
            if twin != row["id"]:
                reason = "duplicate", f"same user, role and create_time as legacy id {twin}"
        outcome[row["id"]] = reason
    return outcome


@dataclass
class Batch:
    """A batch of legacy rows, examined: what writing it changes, and the report once written.

    Examining reads only rows of this batch and the legacy table, never what an earlier batch
    writes, so the next batch can be examined while this one is being written.
    """

    last_id: int
    report: MigrationReport
    new_plans: list[dict] = field(default_factory=list)
    new_quarantine: list[dict] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    requarantined: list[dict] = field(default_factory=list)


def examine_batch(
    engine: Engine,
    after: int | None,
    size: int,
    *,
    dry_run: bool = False,
    retry_quarantined: bool = False,
) -> Batch | None:
    """Read the next `size` legacy rows after legacy id `after` and decide each; None at the end."""
    with engine.connect() as connection:
        rows = _read_batch(connection, after, size)
        if not rows:
            return None
        twins = _read_earlier_twins(connection, rows[0]["id"], rows[-1]["id"])
        roles = load_roles(connection)
    outcome = _classify(rows, twins, roles)

    report = MigrationReport(dry_run=dry_run, retry_quarantined=retry_quarantined)
    batch = Batch(last_id=rows[-1]["id"], report=report)
    now = datetime.now(UTC)
    for row in rows:
        reason = outcome[row["id"]]
        if row["plan_record_id"] is not None:
            report.already_migrated += 1
            continue
        if row["quarantine_reason"] is not None and not retry_quarantined:
            report.quarantined_total[row["quarantine_reason"]] += 1
            continue
        if reason is None:
            batch.new_plans.append(plan_record(row, roles))
            if row["quarantine_reason"] is not None:
                batch.released.append(row["id"])
            continue
        entry = {"legacy_id": row["id"], "reason": reason[0], "detail": reason[1]}
        if row["quarantine_reason"] is None:
            batch.new_quarantine.append(entry | {"quarantined_at": now})
        else:
            batch.requarantined.append(entry)
        report.quarantined_total[reason[0]] += 1
    report.rows_read = len(rows)
    return batch


def write_batch(engine: Engine, batch: Batch) -> MigrationReport:
    """Write an examined batch in one transaction (a dry run only counts); returns its report."""
    report = batch.report
    if report.dry_run:
        report.migrated = len(batch.new_plans)
        report.released_from_quarantine = len(batch.released)
        report.quarantined_new.update(entry["reason"] for entry in batch.new_quarantine)
    else:
        _write_batch(engine, batch)
    return report


def migrate_batch(
    engine: Engine,
    after: int | None,
    size: int,
    *,
    dry_run: bool = False,
    retry_quarantined: bool = False,
) -> tuple[MigrationReport, int | None]:
    """Migrate the next `size` legacy rows after legacy id `after`; returns the last id read."""
    batch = examine_batch(engine, after, size, dry_run=dry_run, retry_quarantined=retry_quarantined)
    if batch is None:
        return MigrationReport(dry_run=dry_run, retry_quarantined=retry_quarantined), None
    return write_batch(engine, batch), batch.last_id


def _write_batch(engine: Engine, batch: Batch) -> None:
    report = batch.report
    with write_transaction(engine) as connection:
        if batch.new_plans:
            report.migrated = _insert_plan_records(connection, batch.new_plans)
            # A concurrent run may have migrated some of these first; count them as such.
            report.already_migrated += len(batch.new_plans) - report.migrated
        if batch.new_quarantine:
            inserted = connection.execute(
                insert_or_skip(connection, migration_quarantine).returning(
                    migration_quarantine.c.reason
                ),
                batch.new_quarantine,
            )
            report.quarantined_new.update(reason for (reason,) in inserted)
        if batch.released:
            connection.execute(
                delete(migration_quarantine).where(
                    migration_quarantine.c.legacy_id.in_(batch.released)
                )
            )
            report.released_from_quarantine = len(batch.released)
        for entry in batch.requarantined:
            connection.execute(
                update(migration_quarantine)
                .where(migration_quarantine.c.legacy_id == entry["legacy_id"])
                .values(reason=entry["reason"], detail=entry["detail"])
            )


PLAN_RECORD_COLUMNS = (
    "legacy_id",
    "user_id",
    "plan_id",
    "service_desc",
    "price",
    "status",
    "create_time",
    "active_time",
    "expire_time",
    "order_id",
)
# PostgreSQL takes the batch as one array per column, unnested in one statement: far less to
# send, parse and plan than a row of values per record. The values are those the column types
# would bind: cents-exact Decimals and aware UTC datetimes.
INSERT_PLAN_RECORDS_POSTGRESQL = text(
    """
    insert into item_record (
        legacy_id, user_id, plan_id, service_desc, price, status,
        create_time, active_time, expire_time, order_id
    )
    select * from unnest(
        cast(:legacy_id as bigint[]),
        cast(:user_id as bigint[]),
        cast(:plan_id as integer[]),
        cast(:service_desc as text[]),
        cast(:price as numeric(14, 2)[]),
        cast(:status as text[]),
        cast(:create_time as timestamptz[]),
        cast(:active_time as timestamptz[]),
        cast(:expire_time as timestamptz[]),
        cast(:order_id as text[])
    )
    on conflict do nothing
    """
)


def _insert_plan_records(connection: Connection, new_plans: list[dict]) -> int:
    """Insert plan records, skipping any that a concurrent run inserted first; returns how many
    were new."""
    if connection.dialect.name == "postgresql":
        columns = {name: [record[name] for record in new_plans] for name in PLAN_RECORD_COLUMNS}
        return connection.execute(INSERT_PLAN_RECORDS_POSTGRESQL, columns).rowcount
    inserted = connection.execute(
        insert_or_skip(connection, item_record).returning(item_record.c.legacy_id), new_plans
    )
    return len(inserted.all())


def rollback_batch(
    engine: Engine, after: int | None, size: int
) -> tuple[RollbackReport, int | None]:
    """Remove the next `size` migrated plan records, in legacy id order, unless they moved.

    A plan record that a flow or a person moved since the migration has a row in the
    transition log; it is kept and reported. The check is made again as rows are deleted, so a
    record moved meanwhile is kept too.
    """
    report = RollbackReport()
    moved_since = exists().where(
        transition_log.c.entity == "plan",
        transition_log.c.entity_id == cast(item_record.c.id, String),
    )
    query = (
        select(item_record.c.id, item_record.c.legacy_id, moved_since.label("moved"))
        .where(item_record.c.legacy_id.is_not(None))
        .order_by(item_record.c.legacy_id)
        .limit(size)
    )
    if after is not None:
        query = query.where(item_record.c.legacy_id > after)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    if not rows:
        return report, None

    report.kept_changed = [row.legacy_id for row in rows if row.moved]
    unmoved = [row.id for row in rows if not row.moved]
    if unmoved:
        with write_transaction(engine) as connection:
            report.removed = connection.execute(
                delete(item_record).where(item_record.c.id.in_(unmoved), ~moved_since)
            ).rowcount
            if report.removed < len(unmoved):
                still_there = select(item_record.c.legacy_id).where(item_record.c.id.in_(unmoved))
                report.kept_changed += connection.execute(still_there).scalars().all()
    return report, rows[-1].legacy_id


def clear_quarantine(engine: Engine) -> int:
    with write_transaction(engine) as connection:
        return connection.execute(delete(migration_quarantine)).rowcount
