"""The scheduled status transitions, one batch (one short transaction) at a time.

Each function moves at most `size` rows per status pair and returns what it moved; a flow
calls it again until nothing is left. Keeping transactions short lets the API keep answering
while a million rows move, and on SQLite lets other writers in between batches.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, exists, select, update

from wallet.db import write_transaction
from wallet.statuses import OrderStatus, PlanStatus
from wallet.tables import item_record, payment_record, refund_settlement
from wallet.transitions import Entity, MoveCounts, move

# An applying plan whose order ended this way ends the same way.
PLAN_END_FOR_ORDER_END = {
    OrderStatus.CLOSED: PlanStatus.CLOSED,
    OrderStatus.FAIL: PlanStatus.CLOSED,
    OrderStatus.CANCELED: PlanStatus.CANCELED,
}

SETTLEMENT_REJECTIONS = ("unknown_order", "not_in_refund", "bad_amount")


def expire_plans_batch(engine: Engine, as_of: datetime, size: int, actor: str) -> MoveCounts:
    """Plans in success or cancel_refund whose expire_time is at or before `as_of` expire."""
    counts = MoveCounts()
    for from_status in (PlanStatus.SUCCESS, PlanStatus.CANCEL_REFUND):
        with write_transaction(engine) as connection:
            moved = move(
                connection,
                Entity.PLAN,
                from_status,
                PlanStatus.EXPIRED,
                actor=actor,
                reason="expire_time passed",
                where=[item_record.c.expire_time <= as_of],
                limit=size,
                # The order of ix_item_record_status_expire_time_id: each batch reads the first
                # `size` entries of the index, whatever number of plans is due.
                order_by=[item_record.c.expire_time, item_record.c.id],
                returning=[item_record.c.expire_time],
                business_time=item_record.c.expire_time,
            )
        counts.add(Entity.PLAN, from_status, PlanStatus.EXPIRED, len(moved))
    return counts


def close_unpaid_orders_batch(
    engine: Engine, as_of: datetime, timeout: timedelta, size: int, actor: str
) -> MoveCounts:
    """Orders still unpay `timeout` after their create_time close."""
    with write_transaction(engine) as connection:
        moved = move(
            connection,
            Entity.ORDER,
            OrderStatus.UNPAY,
            OrderStatus.CLOSED,
            actor=actor,
            reason=f"unpaid for {timeout}",
            where=[payment_record.c.create_time <= as_of - timeout],
            limit=size,
            returning=[payment_record.c.create_time],
            business_time=lambda row: row.create_time + timeout,
        )
    counts = MoveCounts()
    counts.add(Entity.ORDER, OrderStatus.UNPAY, OrderStatus.CLOSED, len(moved))
    return counts


def end_plans_of_ended_orders_batch(engine: Engine, size: int, actor: str) -> MoveCounts:
    """Applying plans whose order closed, failed or was canceled (now or earlier) end too."""
    counts = MoveCounts()
    for order_end, plan_end in PLAN_END_FOR_ORDER_END.items():
        order_ended = exists().where(
            payment_record.c.order_id == item_record.c.order_id,
            payment_record.c.order_status == order_end,
        )
        with write_transaction(engine) as connection:
            moved = move(
                connection,
                Entity.PLAN,
                PlanStatus.APPLYING,
                plan_end,
                actor=actor,
                reason=f"order {order_end}",
                where=[order_ended],
                limit=size,
            )
        counts.add(Entity.PLAN, PlanStatus.APPLYING, plan_end, len(moved))
    return counts


@dataclass
class SettlementBatch:
    """What one batch of settlements did: lines applied, lines rejected, rows moved."""

    applied: int = 0
    rejected: Counter = field(default_factory=Counter)
    rejected_lines: list[tuple[str, int, str]] = field(default_factory=list)
    moves: MoveCounts = field(default_factory=MoveCounts)
    # Plans written in refund after their order was settled (a migration running meanwhile).
    late_plans: int = 0

    @property
    def processed(self) -> int:
        """Settlements judged and late plans refunded; 0 when the batch found nothing to do."""
        return self.applied + sum(self.rejected.values()) + self.late_plans


def _judge(settlements: list) -> dict[int, str | None]:
    """Settlement id -> None to apply, or the reason it is rejected (first that applies).

    Two settlements of one order in a batch: the first that passes applies, and the order is
    then no longer in refund for the others, as if they came in later batches.
    """
    verdicts: dict[int, str | None] = {}
    refunding = set()
    for settlement in settlements:
        if settlement.order_status is None:
            verdict = "unknown_order"
        elif settlement.order_status != OrderStatus.REFUND or settlement.order_id in refunding:
            verdict = "not_in_refund"
        elif not Decimal(0) < settlement.refund_amount <= settlement.actual_price:
            verdict = "bad_amount"
        else:
            verdict = None
            refunding.add(settlement.order_id)
        verdicts[settlement.id] = verdict
    return verdicts


def settle_refunds_batch(engine: Engine, now: datetime, size: int, actor: str) -> SettlementBatch:
    """Apply or reject the next `size` pending settlements, in the order they arrived."""
    report = SettlementBatch()
    pending = (
        select(
            refund_settlement.c.id,
            refund_settlement.c.order_id,
            refund_settlement.c.refund_amount,
            refund_settlement.c.source_file,
            refund_settlement.c.source_line,
            payment_record.c.order_status,
            payment_record.c.actual_price,
        )
        .outerjoin(payment_record, payment_record.c.order_id == refund_settlement.c.order_id)
        .where(refund_settlement.c.status == "pending")
        .order_by(refund_settlement.c.id)
        .limit(size)
    )
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            pending = pending.with_for_update(of=refund_settlement, skip_locked=True)
        settlements = connection.execute(pending).all()
        if not settlements:
            report.late_plans = _refund_late_plans(connection, size, actor, report.moves)
            return report
        verdicts = _judge(settlements)

        to_apply = [settlement_id for settlement_id, verdict in verdicts.items() if not verdict]
        refunded_orders = {}
        if to_apply:
            orders = move(
                connection,
                Entity.ORDER,
                OrderStatus.REFUND,
                OrderStatus.REFUNDED,
                actor=actor,
                reason="refund settled",
                where=[
                    refund_settlement.c.id.in_(to_apply),
                    refund_settlement.c.order_id == payment_record.c.order_id,
                ],
                values={
                    "refunded_amount": refund_settlement.c.refund_amount,
                    "settled_at": refund_settlement.c.settled_at,
                },
                returning=[payment_record.c.settled_at],
                business_time=lambda row: row.settled_at,
            )
            refunded_orders = {row.order_id: row.settled_at for row in orders}
            report.moves.add(Entity.ORDER, "refund", "refunded", len(orders))
        if refunded_orders:
            _refund_plans_of(connection, refunded_orders, actor, report.moves)

        for settlement in settlements:
            verdict = verdicts[settlement.id]
            if verdict is None and settlement.order_id not in refunded_orders:
                # Another transaction moved the order out of refund after it was read.
                verdict = verdicts[settlement.id] = "not_in_refund"
            if verdict is None:
                report.applied += 1
            else:
                report.rejected[verdict] += 1
                report.rejected_lines.append(
                    (settlement.source_file, settlement.source_line, verdict)
                )
        _record_verdicts(connection, verdicts, now)
    return report


def _refund_late_plans(connection, size: int, actor: str, moves: MoveCounts) -> int:
    """Plans in refund whose order a settlement already refunded move to refunded too.

    A plan written after its order was settled (the migration running while settle-refunds
    ran) would otherwise stay in refund, since the order never moves again.
    """
    late = (
        select(payment_record.c.order_id, payment_record.c.settled_at)
        .where(
            payment_record.c.order_status == OrderStatus.REFUNDED,
            payment_record.c.settled_at.is_not(None),
            exists().where(
                item_record.c.order_id == payment_record.c.order_id,
                item_record.c.status == PlanStatus.REFUND,
            ),
        )
        .order_by(payment_record.c.order_id)
        .limit(size)
    )
    settled_at = dict(connection.execute(late).all())
    if not settled_at:
        return 0
    return _refund_plans_of(connection, settled_at, actor, moves)


def _refund_plans_of(
    connection, settled_at: dict[str, datetime], actor: str, moves: MoveCounts
) -> int:
    """Plans in refund of the orders in `settled_at` become refunded as of the settlement."""
    plans = move(
        connection,
        Entity.PLAN,
        PlanStatus.REFUND,
        PlanStatus.REFUNDED,
        actor=actor,
        reason="refund settled",
        where=[item_record.c.order_id.in_(list(settled_at))],
        returning=[item_record.c.order_id],
        business_time=lambda row: settled_at[row.order_id],
    )
    moves.add(Entity.PLAN, PlanStatus.REFUND, PlanStatus.REFUNDED, len(plans))
    return len(plans)


def _record_verdicts(connection, verdicts: dict[int, str | None], now: datetime) -> None:
    by_verdict: dict[str | None, list[int]] = {}
    for settlement_id, verdict in verdicts.items():
        by_verdict.setdefault(verdict, []).append(settlement_id)
    for verdict, ids in by_verdict.items():
        connection.execute(
            update(refund_settlement)
            .where(refund_settlement.c.id.in_(ids))
            .values(
                status="applied" if verdict is None else "rejected",
                reason=verdict,
                processed_at=now,
            )
        )
