"""The selects behind the list endpoints; they read only the views `service_list` and
`payment_record_list`, and always only the signed-in user's rows.

A page is read with a deferred join: the count and the keys of the page come from the user's
listing index alone (`ix_*_user_id_listing` covers every column they filter and sort on), and
only the page's own rows are then read from the table. A deep OFFSET thus skips index entries,
not table rows: the last page of a user with 100,000 orders reads ten orders. A page past the
middle is read from the oldest end (the count says where it starts), so the index walk is never
longer than half the user's rows.
"""

from dataclasses import dataclass

from sqlalchemy import Column, ColumnElement, Connection, Row, Table, UnaryExpression, func, select

from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.tables import payment_record_list, service_list
from wallet_api.deps import Paging


@dataclass(frozen=True)
class Listing:
    """A user's rows of one view, filtered, in the order the endpoint lists them."""

    view: Table
    # The column that tells the view's rows apart; the deferred join joins on it.
    key: Column
    conditions: tuple[ColumnElement[bool], ...]
    # Listed by these columns, descending: newest first, ties broken by the key.
    sorted_by: tuple[Column, ...]

    @property
    def newest_first(self) -> tuple[UnaryExpression, ...]:
        return tuple(column.desc() for column in self.sorted_by)

    @property
    def oldest_first(self) -> tuple[UnaryExpression, ...]:
        return tuple(column.asc() for column in self.sorted_by)


def plan_records_of(user_id: int, status: PlanStatus | None) -> Listing:
    """The user's plan records, newest first; deleted ones only when `status` asks for them."""
    view = service_list
    if status is None:
        shown = view.c.status != PlanStatus.DELETED.value
    else:
        shown = view.c.status == status.value
    return Listing(
        view=view,
        key=view.c.id,
        conditions=(view.c.user_id == user_id, shown),
        sorted_by=(view.c.create_time, view.c.id),
    )


def orders_of(
    user_id: int, record_type: RecordType | None, order_status: OrderStatus | None
) -> Listing:
    """The user's orders, newest first; deleted ones only when `order_status` asks for them."""
    view = payment_record_list
    conditions = [view.c.user_id == user_id]
    if record_type is not None:
        conditions.append(view.c.record_type == record_type.value)
    if order_status is None:
        conditions.append(view.c.order_status != OrderStatus.DELETED.value)
    else:
        conditions.append(view.c.order_status == order_status.value)
    return Listing(
        view=view,
        key=view.c.order_id,
        conditions=tuple(conditions),
        sorted_by=(view.c.create_time, view.c.order_id),
    )


def read_page(connection: Connection, listing: Listing, paging: Paging) -> tuple[list[Row], int]:
    """The rows of one page of `listing`, and how many rows it has on all pages."""
    view, key = listing.view, listing.key
    count = connection.scalar(select(func.count()).select_from(view).where(*listing.conditions))
    if paging.offset >= count:
        return [], count
    rows_after_page = count - paging.offset - paging.per_page
    # Past the middle, the index is walked from the oldest end: the count says where to start.
    if rows_after_page < paging.offset:
        order, offset = listing.oldest_first, max(0, rows_after_page)
        limit = min(paging.per_page, count - paging.offset)
    else:
        order, offset, limit = listing.newest_first, paging.offset, paging.per_page
    page_keys = (
        select(key)
        .where(*listing.conditions)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
        .subquery("page_keys")
    )
    page = (
        select(view).join(page_keys, key == page_keys.c[key.name]).order_by(*listing.newest_first)
    )
    return connection.execute(page).all(), count
