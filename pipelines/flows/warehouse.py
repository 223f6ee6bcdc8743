"""The reporting warehouse's refresh, as a Prefect flow run on a schedule with the others."""

import duckdb
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipelines import warehouse
from wallet.settings import get_settings


def warehouse_busy_or_source_lost(task, task_run, state) -> bool:
    """Retry when the file was locked by a long report, or the source connection failed."""
    return isinstance(state.result(raise_on_failure=False), duckdb.IOException)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=warehouse_busy_or_source_lost,
)
def stage_snapshot(target: warehouse.Warehouse, database_url: str) -> warehouse.StagedSnapshot:
    return warehouse.stage_snapshot(target, database_url)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=warehouse_busy_or_source_lost,
)
def publish_snapshot(
    target: warehouse.Warehouse, staged: warehouse.StagedSnapshot
) -> warehouse.BuildReport:
    return warehouse.publish_snapshot(target, staged)


@flow(name="build-warehouse")
def build_warehouse(database_url: str | None = None, warehouse_path: str | None = None) -> dict:
    """Snapshot the wallet tables into the reporting warehouse (DuckDB), swapped in whole."""
    logger = get_run_logger()
    settings = get_settings()
    target = warehouse.Warehouse.from_settings(settings, warehouse_path)
    source = database_url or settings.database_url
    logger.info("Snapshotting %s into %s", warehouse.source_name(source), target.path)

    staged = stage_snapshot(target, source)

    report = publish_snapshot(target, staged)

    logger.info(
        "Warehouse built: %s; transition log %d rows added, %d in all%s",
        report.rows,
        report.log_rows_added,
        report.log_rows,
        " (copied whole again: new or reset source)" if report.log_reloaded else "",
    )
    create_markdown_artifact(report.to_markdown(), key="build-warehouse-report")
    return report.as_dict()
