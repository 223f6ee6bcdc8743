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

Invariants, by name (`INVARIANTS`); tests/test_concurrent_moves.py checks each one after the
migration and the flows ran at once:

| name           | holds after any mix of runs, concurrent or not                              |
| -------------- | --------------------------------------------------------------------------- |
| allowed        | every `transition_log` row is a move the tables above allow                 |
| logged         | each status change of a row has exactly one log row; a row's log, by id, is  |
|                | a chain from the status it was written with to the one it has now            |
| settled        | an order a settlement refunded has that settlement's `refunded_amount` and   |
|                | `settled_at`, with 0 < refunded_amount <= actual_price                       |
| refunded_plans | no plan stays in refund once a settlement refunded its order, even a plan    |
|                | written after that (settle-refunds moves it on its next run)                |
| no_way_back    | nothing leaves deleted; nothing refunded goes back to success or paid        |
| due            | once each flow ran after the last write, nothing it moves is left due: no    |
|                | plan past expire_time in success or cancel_refund, no order unpay past the  |
|                | timeout, no applying plan whose order ended                                  |
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from operator import attrgetter

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Row,
    String,
    Table,
    Update,
    cast,
    insert,
    literal,
    null,
    select,
    update,
)

from wallet.errors import WalletError
from wallet.statuses import OrderStatus as O
from wallet.statuses import PlanStatus as P
from wallet.tables import item_record, payment_record, transition_log
from wallet.types import UTCDateTime

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


INVARIANTS = {
    "allowed": "every transition_log row is an allowed move",
    "logged": "one log row per status change; a row's log is a chain to its status",
    "settled": "a refunded order carries its settlement's amount and time, within its price",
    "refunded_plans": "no plan stays in refund once a settlement refunded its order",
    "no_way_back": "nothing leaves deleted; refunded never returns to success or paid",
    "due": "once each flow ran after the last write, nothing due is left unmoved",
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
    order_by: Iterable[ColumnElement] = (),
    values: dict | None = None,
    returning: Iterable[ColumnElement] = (),
    business_time: Column | Callable[[Row], datetime | None] | None = None,
) -> list[Row]:
    """Move rows of `entity` in `from_status` matching `where` to `to_status`, and log each.

    `actor` names who moves them (a flow run, a person), `reason` why, as the log shows it.
    At most `limit` rows move, the first in `order_by` order (by default the lowest keys; an
    order an index of `where` already has keeps each pick short on a big table). The UPDATE
    re-checks the old status, so a row another transaction moved first is left alone. Returns
    the moved rows: the key, then the `returning` columns (values after the update).
    `business_time` is one of the `returning` columns, or a function of a moved row.
    """
    if not is_allowed(entity, from_status, to_status):
        raise TransitionNotAllowed(f"a {entity} may not move from {from_status} to {to_status}")
    conditions = [entity.status == from_status, *where]
    if limit is not None:
        picked = select(entity.key).where(*conditions).order_by(*(list(order_by) or [entity.key]))
        picked = picked.limit(limit)
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
    occurred_at = datetime.now(UTC)
    if connection.dialect.name == "postgresql" and not callable(business_time):
        return _move_and_log_at_once(
            connection,
            statement,
            entity,
            from_status,
            to_status,
            occurred_at,
            actor,
            reason,
            business_time,
        )
    if isinstance(business_time, Column):
        business_time = attrgetter(business_time.name)
    moved = connection.execute(statement).all()
    if moved:
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


def _move_and_log_at_once(
    connection: Connection,
    statement: Update,
    entity: Entity,
    from_status: str,
    to_status: str,
    occurred_at: datetime,
    actor: str,
    reason: str,
    business_time: Column | None,
) -> list[Row]:
    """PostgreSQL: the UPDATE and the log rows in one statement (a data-modifying CTE).

    The log rows are written from the UPDATE's RETURNING inside the server, instead of
    travelling to Python and back as one INSERT parameter set per moved row.
    """
    moved = statement.cte("moved")
    logged = insert(transition_log).from_select(
        [
            "entity",
            "entity_id",
            "from_status",
            "to_status",
            "occurred_at",
            "business_time",
            "actor",
            "reason",
        ],
        select(
            literal(entity.value, String),
            cast(moved.c[entity.key.name], String),
            literal(from_status, String),
            literal(to_status, String),
            literal(occurred_at, UTCDateTime),
            null() if business_time is None else moved.c[business_time.name],
            literal(actor, String),
            literal(reason, String),
        ),
    )
    return connection.execute(select(moved).add_cte(logged.cte("logged"))).all()
