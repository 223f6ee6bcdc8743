"""The selects behind the list endpoints; they read only the views `service_list` and
`payment_record_list`, and always only the signed-in user's rows."""

from sqlalchemy import Connection, Row, Select, func, select

from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.tables import payment_record_list, service_list
from wallet_api.deps import Paging


def plan_records_of(user_id: int, status: PlanStatus | None) -> Select:
    """The user's plan records, newest first; deleted ones only when `status` asks for them."""
    view = service_list
    query = select(view).where(view.c.user_id == user_id)
    if status is None:
        query = query.where(view.c.status != PlanStatus.DELETED.value)
    else:
        query = query.where(view.c.status == status.value)
    return query.order_by(view.c.create_time.desc(), view.c.id.desc())


def orders_of(
    user_id: int, record_type: RecordType | None, order_status: OrderStatus | None
) -> Select:
    """The user's orders, newest first; deleted ones only when `order_status` asks for them."""
    view = payment_record_list
    query = select(view).where(view.c.user_id == user_id)
    if record_type is not None:
        query = query.where(view.c.record_type == record_type.value)
    if order_status is None:
        query = query.where(view.c.order_status != OrderStatus.DELETED.value)
    else:
        query = query.where(view.c.order_status == order_status.value)
    return query.order_by(view.c.create_time.desc(), view.c.order_id.desc())


def read_page(connection: Connection, query: Select, paging: Paging) -> tuple[list[Row], int]:
    """The rows of one page of `query`, and how many rows it has on all pages."""
    count = connection.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    if paging.offset >= count:
        return [], count
    rows = connection.execute(query.limit(paging.per_page).offset(paging.offset)).all()
    return rows, count
