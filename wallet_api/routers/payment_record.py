"""GET /payment/payment_record/: the signed-in user's orders."""

from typing import Annotated

from fastapi import APIRouter, Query

from wallet.statuses import OrderStatus, RecordType
from wallet_api.deps import (
    SIGNED_IN_LIST,
    CurrentUserId,
    Database,
    PageParams,
    written_as_one_of,
)
from wallet_api.queries import orders_of, read_page
from wallet_api.schemas import DATABASE_UNAVAILABLE, NOT_SIGNED_IN, PaymentRecordPage

router = APIRouter(
    prefix="/payment/payment_record",
    tags=["orders"],
    dependencies=SIGNED_IN_LIST,
    responses=NOT_SIGNED_IN | DATABASE_UNAVAILABLE,
)

RecordTypeFilter = Annotated[
    RecordType | None,
    written_as_one_of(RecordType),
    Query(description="Only orders of this type: 1 recharge, 2 withdrawal, 3 expense, 4 income."),
]
OrderStatusFilter = Annotated[
    OrderStatus | None,
    Query(description="Only orders in this status; deleted ones show only when asked."),
]


@router.get("/")
def list_orders(
    user_id: CurrentUserId,
    database: Database,
    paging: PageParams,
    record_type: RecordTypeFilter = None,
    order_status: OrderStatusFilter = None,
) -> PaymentRecordPage:
    """My orders, newest first."""
    query = orders_of(user_id, record_type, order_status)
    with database.connect() as connection:
        rows, count = read_page(connection, query, paging)
    return PaymentRecordPage.of(rows, count, paging)
