"""The one-off move of legacy VIP memberships into plan records, as a Prefect flow."""

import time

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote
from sqlalchemy import Engine

from pipelines import vip_migration
from pipelines.flows.support import database_hiccup
from pipelines.progress import report_progress
from wallet.db import get_engine

DEFAULT_BATCH_SIZE = 5_000
# Each update of the progress artifact is a round trip to the Prefect server, dearer than a
# batch's own work when batches are small: it moves at most this often, and at the end.
PROGRESS_EVERY_SECONDS = 2.0


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=database_hiccup)
def examine_batch(
    engine: Engine, after: int | None, size: int, dry_run: bool, retry_quarantined: bool
) -> vip_migration.Batch | None:
    return vip_migration.examine_batch(
        engine, after, size, dry_run=dry_run, retry_quarantined=retry_quarantined
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=database_hiccup)
def write_batch(engine: Engine, batch: vip_migration.Batch) -> vip_migration.MigrationReport:
    return vip_migration.write_batch(engine, batch)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=database_hiccup)
def rollback_batch(
    engine: Engine, after: int | None, size: int
) -> tuple[vip_migration.RollbackReport, int | None]:
    return vip_migration.rollback_batch(engine, after, size)


@flow(name="migrate-vip")
def migrate_vip(
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    retry_quarantined: bool = False,
) -> dict:
    """Migrate every legacy VIP row into a plan record, or quarantine it with a reason."""
    logger = get_run_logger()
    engine = get_engine()
    total = vip_migration.count_legacy_rows(engine)
    logger.info(
        "Migrating %d legacy VIP rows in batches of %d%s",
        total,
        batch_size,
        " (dry run: nothing is written)" if dry_run else "",
    )
    progress = create_progress_artifact(0.0, key="migrate-vip-progress")
    progress_moved = time.monotonic()

    # The next batch is examined while the one before it is written, so that Python and the
    # database work at the same time; batches are still written one after another, in legacy
    # id order, each in its own transaction.
    report = vip_migration.MigrationReport(dry_run=dry_run, retry_quarantined=retry_quarantined)
    writing = None
    after = None
    while True:
        batch = examine_batch(engine, after, batch_size, dry_run, retry_quarantined)
        if writing is not None:
            report.add(writing.result())
            report_progress(report.rows_read, total)
            if time.monotonic() - progress_moved >= PROGRESS_EVERY_SECONDS:
                update_progress_artifact(progress, 100.0 * report.rows_read / max(total, 1))
                progress_moved = time.monotonic()
        if batch is None:
            break
        after = batch.last_id
        # quote(): Prefect would otherwise walk every row of the batch looking for futures.
        writing = write_batch.submit(engine, quote(batch))

    update_progress_artifact(progress, 100.0)
    summary = report.as_dict()
    logger.info(
        "Read %d legacy rows: %d migrated now, %d already, %d quarantined now (%d in all)",
        report.rows_read,
        report.migrated,
        report.already_migrated,
        summary["quarantined_new"],
        summary["quarantined_total"],
    )
    create_markdown_artifact(report.to_markdown(), key="migrate-vip-report")
    return summary


@flow(name="rollback-vip-migration")
def rollback_vip_migration(batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Remove the plan records the migration created, keeping any that changed since."""
    logger = get_run_logger()
    engine = get_engine()

    report = vip_migration.RollbackReport()
    after = None
    while True:
        batch_report, after = rollback_batch(engine, after, batch_size)
        if after is None:
            break
        report.removed += batch_report.removed
        report.kept_changed += batch_report.kept_changed

    report.quarantine_cleared = vip_migration.clear_quarantine(engine)
    if report.kept_changed:
        logger.warning(
            "Kept %d plan records that changed since the migration (legacy ids %s)",
            len(report.kept_changed),
            ", ".join(map(str, report.kept_changed[:20])),
        )
    logger.info(
        "Removed %d migrated plan records and %d quarantine rows",
        report.removed,
        report.quarantine_cleared,
    )
    create_markdown_artifact(
        f"# VIP migration rolled back\n\n- removed: {report.removed}\n"
        f"- kept, changed since: {len(report.kept_changed)}\n"
        f"- quarantine rows cleared: {report.quarantine_cleared}\n",
        key="rollback-vip-migration-report",
    )
    return report.as_dict()
