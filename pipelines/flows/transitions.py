"""The scheduled status transitions, as Prefect flows (they replace the Celery beat jobs)."""

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from pipelines import scheduled_moves
from pipelines.flows.support import database_hiccup, publish_moves, run_actor
from wallet.db import get_engine
from wallet.settings import get_settings
from wallet.transitions import MoveCounts

DEFAULT_BATCH_SIZE = 10_000
batch_task = task(
    cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=database_hiccup
)


@batch_task
def expire_plans_batch(engine: Engine, as_of: datetime, size: int, actor: str) -> MoveCounts:
    return scheduled_moves.expire_plans_batch(engine, as_of, size, actor)


@batch_task
def close_unpaid_orders_batch(
    engine: Engine, as_of: datetime, timeout: timedelta, size: int, actor: str
) -> MoveCounts:
    return scheduled_moves.close_unpaid_orders_batch(engine, as_of, timeout, size, actor)


@batch_task
def end_plans_of_ended_orders_batch(engine: Engine, size: int, actor: str) -> MoveCounts:
    return scheduled_moves.end_plans_of_ended_orders_batch(engine, size, actor)


@batch_task
def settle_refunds_batch(
    engine: Engine, now: datetime, size: int, actor: str
) -> scheduled_moves.SettlementBatch:
    return scheduled_moves.settle_refunds_batch(engine, now, size, actor)


def _until_nothing_moves(run_batch) -> MoveCounts:
    moves = MoveCounts()
    while (batch := run_batch()).total:
        moves.merge(batch)
    return moves


@flow(name="expire-plans")
def expire_plans(batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Plans in success or cancel_refund whose expire_time has passed become expired."""
    logger = get_run_logger()
    engine, actor, as_of = get_engine(), run_actor(), datetime.now(UTC)
    logger.info("Expiring plans whose expire_time is at or before %s", as_of.isoformat())

    moves = _until_nothing_moves(lambda: expire_plans_batch(engine, as_of, batch_size, actor))

    logger.info("Expired %d plans: %s", moves.total, moves.as_dict())
    publish_moves("expire-plans-report", f"expire-plans as of {as_of:%Y-%m-%d %H:%M:%S}Z", moves)
    return {"as_of": as_of.isoformat(), "moved": moves.total, "moves": moves.as_dict()}


@flow(name="close-unpaid-orders")
def close_unpaid_orders(batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Orders unpaid past the timeout close; applying plans of ended orders end with them."""
    logger = get_run_logger()
    engine, actor, as_of = get_engine(), run_actor(), datetime.now(UTC)
    timeout = get_settings().unpaid_timeout
    logger.info("Closing orders still unpaid %s after they were created", timeout)

    moves = _until_nothing_moves(
        lambda: close_unpaid_orders_batch(engine, as_of, timeout, batch_size, actor)
    )
    moves.merge(
        _until_nothing_moves(lambda: end_plans_of_ended_orders_batch(engine, batch_size, actor))
    )

    logger.info("Moved %d rows: %s", moves.total, moves.as_dict())
    publish_moves("close-unpaid-orders-report", f"close-unpaid-orders (timeout {timeout})", moves)
    return {"as_of": as_of.isoformat(), "moved": moves.total, "moves": moves.as_dict()}


@flow(name="settle-refunds")
def settle_refunds(batch_size: int = 1_000) -> dict:
    """Apply pending refund settlements; reject those that do not fit their order."""
    logger = get_run_logger()
    engine, actor, now = get_engine(), run_actor(), datetime.now(UTC)

    total = scheduled_moves.SettlementBatch()
    while (batch := settle_refunds_batch(engine, now, batch_size, actor)).processed:
        total.applied += batch.applied
        total.rejected.update(batch.rejected)
        total.rejected_lines += batch.rejected_lines
        total.moves.merge(batch.moves)

    for source_file, line, reason in total.rejected_lines:
        logger.warning("Rejected settlement %s line %d: %s", source_file, line, reason)
    logger.info(
        "Applied %d settlements, rejected %d; moved %s",
        total.applied,
        sum(total.rejected.values()),
        total.moves.as_dict(),
    )
    summary = [
        f"- settlements applied: {total.applied}",
        *(
            f"- rejected, {reason}: {total.rejected[reason]}"
            for reason in scheduled_moves.SETTLEMENT_REJECTIONS
        ),
    ]
    publish_moves("settle-refunds-report", "settle-refunds", total.moves, summary)
    return {
        "applied": total.applied,
        "rejected": dict(total.rejected),
        "rejected_lines": [
            {"file": source_file, "line": line, "reason": reason}
            for source_file, line, reason in total.rejected_lines
        ],
        "moved": total.moves.total,
        "moves": total.moves.as_dict(),
    }
