"""The allowed status moves of plans and orders, and the one way to make them.

Every status change goes through `move()`: a conditional, set-based UPDATE on the old status
(so two runs that race for the same rows move each row once) written in the same transaction
as one `transition_log` row per moved row.

Plan records (`item_record.status`):

| from          | allowed to                                |
| ------------- | ----------------------------------------- |
| applying      | success, closed, canceled, deleted        |
| success       | refund, expired, deleted                  |
| refund        | refunded, cancel_refund                   |
| cancel_refund | refund, expired, deleted                  |
| refunded      | deleted                                   |
| closed        | deleted                                   |
| canceled      | deleted                                   |
| expired       | deleted                                   |
| deleted       | (nothing)                                 |

Orders (`payment_record.order_status`):

| from          | allowed to                                |
| ------------- | ----------------------------------------- |
| unpay         | paid, fail, closed, canceled, deleted     |
| paid          | refund, deleted                           |
| fail          | deleted                                   |
| refund        | refunded, cancel_refund                   |
| cancel_refund | refund, deleted                           |
| refunded      | deleted                                   |
| closed        | deleted                                   |
| canceled      | deleted                                   |
| deleted       | (nothing)                                 |

Invariants that hold after any mix of runs, concurrent or not:
1. Every `transition_log` row is an allowed move of this table.
2. Each status change of a row has exactly one log row; the log of a row, ordered by id, is a
   chain: each `from_status` is the previous `to_status`, the last `to_status` is the stored
   status.
3. An order in `refunded` that a settlement moved has `settled_at` and a `refunded_amount`
   with 0 < refunded_amount <= actual_price.
4. Nothing ever leaves `deleted`, and a plan or order in `refunded` never goes back to `success`
   or `paid`.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, ColumnElement, Connection, Row, Table, insert, select, update

from wallet.errors import WalletError
from wallet.statuses import OrderStatus as O
from wallet.statuses import PlanStatus as P
from wallet.tables import item_record, payment_record, transition_log

PLAN_MOVES: dict[P, frozenset[P]] = {
    P.APPLYING: frozenset({P.SUCCESS, P.CLOSED, P.CANCELED, P.DELETED}),
    P.SUCCESS: frozenset({P.REFUND, P.EXPIRED, P.DELETED}),
    P.REFUND: frozenset({P.REFUNDED, P.CANCEL_REFUND}),
    P.CANCEL_REFUND: frozenset({P.REFUND, P.EXPIRED, P.DELETED}),
    P.REFUNDED: frozenset({P.DELETED}),
    P.CLOSED: frozenset({P.DELETED}),
    P.CANCELED: frozenset({P.DELETED}),
    P.EXPIRED: frozenset({P.DELETED}),
    P.DELETED: frozenset(),
}

ORDER_MOVES: dict[O, frozenset[O]] = {
    O.UNPAY: frozenset({O.PAID, O.FAIL, O.CLOSED, O.CANCELED, O.DELETED}),
    O.PAID: frozenset({O.REFUND, O.DELETED}),
    O.FAIL: frozenset({O.DELETED}),
    O.REFUND: frozenset({O.REFUNDED, O.CANCEL_REFUND}),
    O.CANCEL_REFUND: frozenset({O.REFUND, O.DELETED}),
    O.REFUNDED: frozenset({O.DELETED}),
    O.CLOSED: frozenset({O.DELETED}),
    O.CANCELED: frozenset({O.DELETED}),
    O.DELETED: frozenset(),
}


class TransitionNotAllowed(WalletError):
    """A move that the table of allowed moves does not list was asked for."""


class Entity(StrEnum):
    PLAN = "plan"
    ORDER = "order"

    @property
    def table(self) -> Table:
        return item_record if self is Entity.PLAN else payment_record

    @property
    def key(self) -> Column:
        return item_record.c.id if self is Entity.PLAN else payment_record.c.order_id

    @property
    def status(self) -> Column:
        return item_record.c.status if self is Entity.PLAN else payment_record.c.order_status

    @property
    def moves(self) -> dict:
        return PLAN_MOVES if self is Entity.PLAN else ORDER_MOVES


def is_allowed(entity: Entity, from_status: str, to_status: str) -> bool:
    # Status enums are str enums, so plain strings look them up too.
    return to_status in entity.moves.get(from_status, frozenset())


@dataclass
class MoveCounts:
    """How many rows moved, per (entity, from, to)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, entity: Entity, from_status: str, to_status: str, moved: int) -> None:
        if moved:
            self.counts[(entity.value, from_status, to_status)] += moved

    def merge(self, other: "MoveCounts") -> None:
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return {
            f"{entity} {source} -> {target}": moved
            for (entity, source, target), moved in sorted(self.counts.items())
        }


def move(
    connection: Connection,
    entity: Entity,
    from_status: str,
    to_status: str,
    *,
    actor: str,
    reason: str,
    where: Iterable[ColumnElement[bool]] = (),
    limit: int | None = None,
    values: dict | None = None,
    returning: Iterable[ColumnElement] = (),
    business_time: Callable[[Row], datetime | None] | None = None,
) -> list[Row]:
    """Move rows of `entity` in `from_status` matching `where` to `to_status`, and log each.

    `actor` names who moves them (a flow run, a person), `reason` why, as the log shows it.
    At most `limit` rows move (lowest keys first). The UPDATE re-checks the old status, so a
    row another transaction moved first is left alone. Returns the moved rows: the key, then
    the `returning` columns (values after the update).
    """
    if not is_allowed(entity, from_status, to_status):
        raise TransitionNotAllowed(f"a {entity} may not move from {from_status} to {to_status}")
    conditions = [entity.status == from_status, *where]
    if limit is not None:
        picked = select(entity.key).where(*conditions).order_by(entity.key).limit(limit)
        if connection.dialect.name == "postgresql":
            # Rows another run is moving right now are skipped, not waited for.
            picked = picked.with_for_update(skip_locked=True)
        conditions.append(entity.key.in_(picked.scalar_subquery()))
    statement = (
        update(entity.table)
        .where(*conditions)
        .values({entity.status.name: to_status, **(values or {})})
        .returning(entity.key, *returning)
    )
    moved = connection.execute(statement).all()
    if moved:
        occurred_at = datetime.now(UTC)
        connection.execute(
            insert(transition_log),
            [
                {
                    "entity": entity.value,
                    "entity_id": str(row[0]),
                    "from_status": from_status,
                    "to_status": to_status,
                    "occurred_at": occurred_at,
                    "business_time": business_time(row) if business_time else None,
                    "actor": actor,
                    "reason": reason,
                }
                for row in moved
            ],
        )
    return moved
