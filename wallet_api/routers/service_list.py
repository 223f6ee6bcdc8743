"""GET /payment/service_list/: the signed-in user's plan records."""

from typing import Annotated

from fastapi import APIRouter, Query

from wallet.statuses import PlanStatus
from wallet_api.deps import SIGNED_IN_LIST, CurrentUserId, Database, PageParams
from wallet_api.queries import plan_records_of, read_page
from wallet_api.schemas import DATABASE_UNAVAILABLE, NOT_SIGNED_IN, ServiceListPage

router = APIRouter(
    prefix="/payment/service_list",
    tags=["plans"],
    dependencies=SIGNED_IN_LIST,
    responses=NOT_SIGNED_IN | DATABASE_UNAVAILABLE,
)

StatusFilter = Annotated[
    PlanStatus | None,
    Query(
        description="Only plan records in this status. `expired` also matches success and "
        "cancel_refund plans whose expire_time has passed; deleted ones show only when asked."
    ),
]


@router.get("/")
def list_plan_records(
    user_id: CurrentUserId,
    database: Database,
    paging: PageParams,
    status: StatusFilter = None,
) -> ServiceListPage:
    """My plans, newest first."""
    with database.connect() as connection:
        rows, count = read_page(connection, plan_records_of(user_id, status), paging)
    return ServiceListPage.of(rows, count, paging)
